"""The run starts before the task's code, and what users write around it keeps their rows.

Real local Flyte runs with the real wandb client (offline, or against loopback servers):

* W&B's own quickstart idiom ``with wandb.init(...) as run:`` and ``with get_wandb_run() as
  run:`` inside a decorated task record their rows in the task's run;
* a server that never answers, or that drops every connection, fails the task before its code
  runs (a refusing one: ``test_online_failures.py``), within the start's bound;
* ``finish_timeout`` bounds the end of a run that logged 10^5 rows to a server that died;
* the getting-started shape (bare ``@wandb_init``, project and entity from ``wandb_config`` in
  the run's context) warns about nothing and its link names the run;
* a process running decorated tasks one after another (a reused container) is left as it was:
  no ``WANDB_*`` variable and no signal handler of ours;
* ``start=`` is deprecated (it has no effect) and still checked.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import pytest
import wandb
from _plugin_helpers import only, records, run_local, user_rows
from servers import WandbTestServer

from flyteplugins.wandb import Wandb, get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb._resilience import CLIENT_BOUNDS, env_var

env = flyte.TaskEnvironment(name="plugin_start")


@wandb_init(project="quickstart")
@env.task
def quickstart_idiom() -> str:
    with wandb.init(project="quickstart", config={"lr": 0.1}) as run:
        for i in range(3):
            run.log({"loss": 1.0 / (i + 1)})
    return str(run.id)


@wandb_init(project="quickstart")
@env.task
def with_the_task_run() -> str:
    with get_wandb_run() as run:
        run.log({"acc": 0.5})
        run.log({"acc": 0.75})
    assert get_wandb_run() is None  # finished by the block: the task has no live run any more
    return str(run.id)


@wandb_init(project="quickstart")
@env.task
def finishes_early() -> list[bool]:
    run = get_wandb_run()
    assert run is not None
    run.log({"acc": 1.0})
    wandb.finish()
    return [get_wandb_run() is None, wandb.run is None]


def test_after_the_users_own_finish_the_task_has_no_run(wandb_offline: Path) -> None:
    assert run_local(finishes_early, name="qs-finish") == [True, True]
    rec = only(wandb_offline)
    assert [r["acc"] for r in user_rows(rec)] == [1.0] and rec.exit_code == 0


def test_the_quickstart_idiom_records_in_the_task_run(wandb_offline: Path) -> None:
    run_id = run_local(quickstart_idiom, name="qs-idiom")
    rec = only(wandb_offline)
    assert rec.run_id == run_id
    assert [r["loss"] for r in user_rows(rec)] == [1.0, 0.5, 1.0 / 3]
    assert rec.config["lr"] == 0.1
    assert rec.exit_code == 0


def test_with_get_wandb_run_records_in_the_task_run(wandb_offline: Path) -> None:
    run_id = run_local(with_the_task_run, name="qs-own")
    rec = only(wandb_offline)
    assert rec.run_id == run_id
    assert [r["acc"] for r in user_rows(rec)] == [0.5, 0.75]


# -- servers that fail during the start ------------------------------------------------------

ran: list[str] = []


@wandb_init(project="start-fails", entity="ent")
@env.task
def never_runs() -> int:
    ran.append("user code")
    return 1


@pytest.fixture
def bad_server(wandb_online_at: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A loopback server that ``answer`` decides about: ``"never"`` accepts connections and
    never answers; ``"drop"`` closes every connection at once (a server dying as the client
    talks to it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    mode: list[str] = ["never"]
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            if mode[0] == "drop":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    class _Server:
        def __init__(self) -> None:
            self.url = url

    wandb_online_at(_Server())
    for name in (*CLIENT_BOUNDS, "finish_timeout"):  # the plugin's own bounds, as documented
        monkeypatch.delenv(env_var(name), raising=False)
    yield mode, url
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


#: docs/server-failures.md: a refusing server (or one dropping every connection) is given up
#: after the GraphQL retries (about 25 s with the plugin's defaults, which
#: test_online_failures.py checks; one retry here); one that never answers within
#: ``init_timeout`` (60 s by default; 8 s here). Plus the local Flyte run's own start and end.
DROPPED_BOUND_S = 10.0 + 10.0
SILENT_INIT_TIMEOUT_S = 8
SILENT_BOUND_S = SILENT_INIT_TIMEOUT_S + 5.0 + 10.0


@pytest.mark.online
@pytest.mark.parametrize("answer", ["never", "drop"])
def test_a_failing_server_fails_the_task_before_its_code(
    bad_server: Any, answer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mode, url = bad_server
    mode[0] = answer
    if answer == "never":
        monkeypatch.setenv("WANDB_INIT_TIMEOUT", str(SILENT_INIT_TIMEOUT_S))
    else:
        monkeypatch.setenv(env_var("x_graphql_retry_max"), "1")
    ran.clear()
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        run_local(never_runs, name=f"start-{answer}")
    elapsed = time.monotonic() - started
    assert ran == []  # the code never ran against a run that was not there
    assert url in str(caught.value)
    assert "could not be reached" in str(caught.value)
    assert elapsed < (SILENT_BOUND_S if answer == "never" else DROPPED_BOUND_S), elapsed


# -- the end of a run whose server died ------------------------------------------------------

ROWS = 100_000
_victim: list[WandbTestServer] = []
_returned: list[float] = []


@wandb_init(project="dead-end", entity="ent", finish_timeout=5)
@env.task
def many_rows_then_dead() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"x": -1})
    _victim[0].kill()
    for i in range(ROWS):
        run.log({"x": i})
    _returned.append(time.monotonic())
    return str(run.settings.sync_dir)


@pytest.mark.online
def test_finish_timeout_bounds_the_end_with_a_dead_server(
    make_wandb_server: Any, wandb_online_at: Any
) -> None:
    server: WandbTestServer = make_wandb_server()
    wandb_online_at(server)
    _victim[:] = [server]
    _returned.clear()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_dir = run_local(many_rows_then_dead, name="dead-end")
    ended = time.monotonic() - _returned[0]
    # finish_timeout=5, plus the local run's own end (outputs, controller)
    assert ended < 5 + 20, ended
    incomplete = [str(w.message) for w in seen if "incomplete" in str(w.message)]
    assert incomplete and run_dir in incomplete[0] and "wandb sync" in incomplete[0]
    # every row is in the run's local file, ready for `wandb sync`
    (rec,) = records(Path(run_dir))
    assert len(user_rows(rec)) == ROWS + 1


# -- the getting-started shape ---------------------------------------------------------------


def test_the_getting_started_shape_warns_about_nothing_and_links_to_the_run(
    wandb_offline: Path,
) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")

        @wandb_init
        @env.task
        def getting_started() -> str:
            run = get_wandb_run()
            assert run is not None
            run.log({"loss": 0.5})
            return str(run.id)

        context = wandb_config(project="my-project", entity="my-team")
        run_id = run_local(getting_started, name="gs-run", custom_context=dict(context))
    ours = [w for w in seen if "flyteplugins" in w.filename or "W&B" in str(w.message)]
    assert ours == [], [str(w.message) for w in ours]
    (link,) = [x for x in getting_started.links if isinstance(x, Wandb)]
    url = link.get_link(
        run_name="gs-run",
        project="p",
        domain="d",
        context=dict(context),
        parent_action_name="a0",
        action_name=run_id.removeprefix("gs-run-"),  # the action the local run named
        pod_name="pod",
    )
    assert url.endswith(f"/my-team/my-project/runs/{run_id}"), (url, run_id)


# -- a reused process ------------------------------------------------------------------------


@wandb_init(project="reuse")
@env.task
async def async_step(i: int) -> int:
    run = get_wandb_run()
    assert run is not None
    run.log({"i": i})
    return i


@wandb_init(project="reuse")
@env.task
def sync_step(i: int) -> int:
    wandb.log({"i": i})
    return i


def test_tasks_one_after_another_leave_the_process_as_it_was(wandb_offline: Path) -> None:
    before_env = {k: v for k, v in os.environ.items() if k.startswith("WANDB_")}
    before_handler = signal.getsignal(signal.SIGTERM)
    for i in range(2):
        assert run_local(async_step, i, name=f"reuse-async-{i}") == i
        assert run_local(sync_step, i, name=f"reuse-sync-{i}") == i
        after = {k: v for k, v in os.environ.items() if k.startswith("WANDB_")}
        after.pop("WANDB_SERVICE", None)  # the client's own, for its child processes
        assert after == before_env
        assert signal.getsignal(signal.SIGTERM) is before_handler
    assert len(records(wandb_offline)) == 4


# -- start= ----------------------------------------------------------------------------------


def test_start_is_deprecated_and_still_checked() -> None:
    with pytest.warns(DeprecationWarning, match="start='background' is deprecated"):
        wandb_config(start="background")
    with pytest.warns(DeprecationWarning, match="no effect"):
        wandb_init(start="blocking")
    with pytest.raises(ValueError, match="'later'"):
        wandb_config(start="later")
