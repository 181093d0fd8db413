"""``flyteplugins.wandb.ext``: the declared surface the sweeps distribution builds on.

The names and signatures are pinned here on purpose: changing one is a contract change (a new
minor version of the plugin and a CHANGELOG entry), never an accident. The behaviour is checked
on real offline runs of the real wandb client.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flyteplugins.wandb as plugin
from flyteplugins.wandb import ext, wandb_config, wandb_init

CONTRACT = {
    "WANDB_ICON": None,
    "ContextEntries": None,
    "RecordFormatError": None,
    "RunRecord": None,
    "action_id_base": "(run_name: str, action_name: str) -> str",
    "client_server": "(api_url: str | None) -> Iterator[None]",
    "current_custom_context": "() -> dict[str, str]",
    "decode_entries": "(prefix: str, context: Mapping[str, str], names: Any = None) -> "
    "dict[str, Any]",
    "decode_value": "(text: str, *, key: str = 'value') -> Any",
    "effective_mode": "(requested: str | None) -> str",
    "encode_entries": "(prefix: str, values: Mapping[str, Any]) -> dict[str, str]",
    "encode_value": "(value: Any, *, key: str = 'value') -> str",
    "find_run_files": "(root: str | Path) -> list[Path]",
    "flyte_identity": "() -> dict[str, Any] | None",
    "keep_links_on_override": "(task: Any, ours: Sequence[Any], make_links: "
    "Callable[[Any], Sequence[Any]]) -> None",
    "live_run_ids": "() -> tuple[str, ...]",
    "override_custom_context": "(entries: Mapping[str, str]) -> Iterator[None]",
    "read_run": "(path: str | Path) -> RunRecord",
    "read_wandb_config": "(context: Mapping[str, str] | None = None) -> dict[str, Any]",
    "server_url": "(settings: Mapping[str, Any]) -> str",
    "sweep_page_url": "(settings: Mapping[str, Any], sweep_id: str | None) -> str",
}


def test_flyte_identity_is_none_outside_a_task() -> None:
    assert ext.flyte_identity() is None


def test_the_surface_is_exactly_the_declared_names() -> None:
    assert sorted(ext.__all__) == sorted(CONTRACT)
    for name in ext.__all__:
        assert getattr(ext, name).__doc__ or name == "WANDB_ICON", f"{name} has no docstring"


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The real client, offline, writing under ``tmp_path`` (no key, no agent, no ranks)."""
    import wandb

    for var in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_SERVICE", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    wandb.teardown()
    yield tmp_path
    wandb.teardown()


@pytest.mark.parametrize(("name", "signature"), [(n, s) for n, s in CONTRACT.items() if s])
def test_signatures_are_pinned(name: str, signature: str) -> None:
    text = str(inspect.signature(getattr(ext, name)))
    # annotations are strings (postponed evaluation): drop their quotes, keep those of defaults
    text = re.sub(r"(: |-> )'([^']*)'", r"\1\2", text)
    assert text == signature


def test_importing_ext_does_not_import_wandb() -> None:
    code = "import sys, flyteplugins.wandb.ext; print('wandb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


scalars = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(min_size=1), json_values, max_size=5))
def test_entries_round_trip_exactly(values: dict[str, object]) -> None:
    entries = ext.encode_entries("ext/", values)
    assert all(k.startswith("ext/") and isinstance(v, str) for k, v in entries.items())
    decoded = ext.decode_entries("ext/", {**entries, "other/x": "not json"})
    assert decoded == {k: v for k, v in values.items() if v is not None}


@pytest.mark.parametrize(
    ("requested", "env", "mode"),
    [
        (None, None, "online"),
        (None, "offline", "offline"),
        ("online", "offline", "online"),
        ("dryrun", None, "offline"),
        ("run", None, "online"),
        ("disabled", "online", "disabled"),
    ],
)
def test_effective_mode(
    requested: str | None, env: str | None, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    assert ext.effective_mode(requested) == mode


def test_context_overrides_are_seen_and_restored() -> None:
    before = ext.current_custom_context()
    with ext.override_custom_context(ext.encode_entries("ext/", {"a": 1})):
        assert ext.decode_entries("ext/", ext.current_custom_context()) == {"a": 1}
        with wandb_config(project="p"):
            assert ext.read_wandb_config() == {"project": "p"}
    assert ext.current_custom_context() == before
    assert isinstance(wandb_config(project="p"), ext.ContextEntries)


def test_live_runs_and_the_record_reader_on_a_real_offline_run(offline: Path) -> None:
    seen: list[tuple[str, ...]] = []
    ids: list[str] = []

    @wandb_init(project="ext", config={"lr": 0.1})
    def train() -> None:
        run = plugin.get_wandb_run()
        assert run is not None
        ids.append(run.id)
        seen.append(ext.live_run_ids())
        run.log({"loss": 0.5})

    assert ext.live_run_ids() == ()
    train()
    assert seen == [(ids[0],)]
    assert ext.live_run_ids() == ()  # finished: no longer live
    import wandb

    wandb.teardown()  # the client's service writes the run file out when it closes
    [path] = ext.find_run_files(offline)
    record = ext.read_run(path)
    assert isinstance(record, ext.RunRecord)
    assert (record.run_id, record.project, record.exit_code) == (ids[0], "ext", 0)
    assert record.config["lr"] == 0.1
    assert record.metric("loss") == [0.5]
    bad = offline / "bad.wandb"
    bad.write_bytes(b"not a run file")
    with pytest.raises(ext.RecordFormatError):
        ext.read_run(bad)


def test_a_failed_call_is_no_longer_live(offline: Path) -> None:
    @wandb_init(project="ext")
    def boom() -> None:
        assert len(ext.live_run_ids()) == 1
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        boom()
    assert ext.live_run_ids() == ()


def test_server_url_and_client_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The sweeps' server is the resolver's; the client's environment is changed only inside
    the block and restored after it."""
    import os

    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    assert ext.server_url({}) == "https://api.forge.coreweave.com"
    assert ext.server_url({"host": "wandb.ai"}) == "https://api.wandb.ai"
    with ext.client_server("http://127.0.0.1:9"):
        assert os.environ["WANDB_BASE_URL"] == "http://127.0.0.1:9"
    assert "WANDB_BASE_URL" not in os.environ
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:8")
    with ext.client_server("http://127.0.0.1:9"):
        assert os.environ["WANDB_BASE_URL"] == "http://127.0.0.1:9"
    assert os.environ["WANDB_BASE_URL"] == "http://127.0.0.1:8"


@pytest.mark.parametrize(
    ("run_name", "action_name", "base"),
    [
        ("r1", "a1", "r1-a1"),
        ("my run", "a/b", "my-run-a-b"),
        ("r1", "{{.actionName}}", "r1-{{.actionName}}"),
    ],
)
def test_action_id_base_is_the_id_of_a_tasks_own_run(
    run_name: str, action_name: str, base: str
) -> None:
    assert ext.action_id_base(run_name, action_name) == base
    assert len(ext.action_id_base("r" * 300, "a1")) <= 100
    assert ext.action_id_base("r" * 300, "a1") == ext.action_id_base("r" * 300, "a1")


def test_keep_links_on_override_keeps_every_decorators_links() -> None:
    """Two decorators' hooks on one task: each keeps its own links, in order."""
    import flyte

    from flyteplugins.wandb import Wandb

    env = flyte.TaskEnvironment(name="ext_links")

    @env.task
    def t() -> None: ...

    def add(task: Any, project: str) -> None:
        def make(_: Any) -> tuple[Wandb]:
            return (Wandb(project=project),)

        links = make(task)
        task.links = (*tuple(task.links or ()), *links)
        ext.keep_links_on_override(task, links, make)

    add(t, "first")
    add(t, "second")
    theirs = Wandb(project="theirs")
    for new in (t.override(links=(theirs,)), t.override(retries=1).override(links=(theirs,))):
        assert [link.project for link in new.links] == ["theirs", "first", "second"]
