"""Shared fixtures of the integration tests: isolated W&B folders, offline mode by default."""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _distributed_expect import (
    FAILURE_CASES,
    REPORT_CASE,
    OnlineJob,
    launch_elastic,
    launch_offline,
    launch_online,
)
from _plugin_helpers import reset_wandb
from servers import OpenWandbServer, ServerProcess, WandbTestServer, client_env
from torchrun_harness import LaunchResult


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the real wandb client offline with every folder it writes inside ``tmp_path``."""
    for var in ("WANDB_API_KEY", "WANDB_SERVICE", "WANDB_RUN_ID", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- Online: W&B-compatible servers on 127.0.0.1 (see servers.py and docs/testing-servers.md) ----


@pytest.fixture(scope="session")
def wandb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WandbTestServer]:
    """The project's own W&B test server, one per session (use a fresh project name per test)."""
    server = WandbTestServer(tmp_path_factory.mktemp("wandb-server") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_wandb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Factory of private test servers, for tests that kill one; all stopped at teardown."""
    started: list[WandbTestServer] = []

    def make() -> WandbTestServer:
        server = WandbTestServer(tmp_path_factory.mktemp("wandb-server") / "data")
        started.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def openwandb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWandbServer]:
    """openwandb (PyPI, its own cached venv; non-commercial licence: a test tool only)."""
    server = OpenWandbServer(tmp_path_factory.mktemp("openwandb") / "data")
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def wandb_online_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``point(server) -> Path``: send this test's real wandb client to ``server``.

    Sets WANDB_BASE_URL, WANDB_MODE=online, a dummy API key, bounded client retries, and HOME and
    every W&B folder under the returned folder (also the working directory). The in-process wandb
    session is torn down before and after, so the next test's environment takes effect.
    """

    def point(server: ServerProcess) -> Path:
        reset_wandb()
        for var in ("WANDB_SERVICE", "WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_PROJECT"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv("WANDB_ENTITY", raising=False)
        for key, value in client_env(server.url, tmp_path / "home").items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        return tmp_path

    yield point
    reset_wandb()


@pytest.fixture
def wandb_online(wandb_server: WandbTestServer, wandb_online_at: Any) -> WandbTestServer:
    """The real wandb client, online, talking to the session's own test server."""
    if not wandb_server.running:  # a test that killed it must not break the next one
        wandb_server.start()
    wandb_online_at(wandb_server)
    return wandb_server


# -- Real torchrun jobs that several test files check (see torchrun_harness.py) ----------------
# One process per rank runs every case of a job in turn, so a topology's start-up is paid once
# per session; docs/testing-servers.md lists the jobs and what each proves.


@pytest.fixture(scope="session")
def torchrun_offline_1x2(tmp_path_factory: pytest.TempPathFactory) -> LaunchResult:
    """One node x 2 processes, offline: every run_mode x rank_scope pair, then ranks that raise
    (test_distributed_failures.py) and the W&B tab of a distributed task
    (test_report_distributed.py)."""
    root = tmp_path_factory.mktemp("torchrun-1x2")
    return launch_offline(root, 1, "one", [*FAILURE_CASES, REPORT_CASE])


@pytest.fixture(scope="session")
def torchrun_offline_2x2(tmp_path_factory: pytest.TempPathFactory) -> LaunchResult:
    """Two simulated nodes x 2 processes, offline: every run_mode x rank_scope pair.

    Checked against the spec's tables (test_distributed_clustered.py) and against the plan
    CLI's rows (test_cli_runtime.py).
    """
    return launch_offline(tmp_path_factory.mktemp("torchrun-2x2"), 2, "two", [])


@pytest.fixture(scope="session")
def elastic_1x2(tmp_path_factory: pytest.TempPathFactory) -> LaunchResult:
    """The Elastic remote path, a failing and a killed rank, a restart: one launcher, a case
    each (test_distributed_elastic.py, test_distributed_failures.py)."""
    return launch_elastic(tmp_path_factory.mktemp("elastic-1x2"))


@pytest.fixture(scope="session")
def online_1x2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnlineJob]:
    """One node x 2 processes writing to a W&B test server of their own: the shared-mode cases
    of test_distributed_shared_online.py, then the case of test_distributed_shared_bounded.py,
    whose server this fixture kills once both ranks have logged their steps."""
    server = WandbTestServer(tmp_path_factory.mktemp("wandb-server") / "data")
    server.start()
    try:
        yield launch_online(server, tmp_path_factory.mktemp("torchrun-online-1x2"))
    finally:
        server.stop()


# -- Each test's CPU time, beside its duration in the JUnit XML (nox -s bench -- loop) -----------

_CPU_AT_SETUP = pytest.StashKey[float]()


def _cpu_s() -> float:
    """CPU time (user + system) of this process and of the processes it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_CPU_AT_SETUP] = _cpu_s()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """``cpu_s``: the test's CPU time from its set-up to its teardown (a module's shared job
    counts in the test that starts it; services that outlive their parent process are missed)."""
    try:
        return (yield)
    finally:
        if _CPU_AT_SETUP in item.stash:
            item.user_properties.append(("cpu_s", round(_cpu_s() - item.stash[_CPU_AT_SETUP], 2)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup`` (``NOX_XDIST_WORKERS`` in the noxfile).

    One group per file, so a file's module-scoped fixtures (a torchrun job its tests share)
    start once; one group for every file that uses the torchrun harness, so two torchrun jobs
    (several processes each) never compete for the CPUs.
    """
    if not config.pluginmanager.hasplugin("xdist"):
        return
    harness = sys.modules.get("torchrun_harness")
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module).values() if module is not None else ()
        launches = harness is not None and any(
            v is harness or getattr(v, "__module__", None) == harness.__name__ for v in names
        )
        item.add_marker(pytest.mark.xdist_group("torchrun" if launches else item.path.name))
