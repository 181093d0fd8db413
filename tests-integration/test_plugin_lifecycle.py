"""Lifecycle of @wandb_init runs: failures of every kind, retries, ids, sweeps trials, ranks,
processes, API keys and decoration errors; real local Flyte runs, real wandb offline."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import flyte
import pytest
from _plugin_helpers import by_id, only, records, reset_wandb, run_local, user_rows

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init

HERE = Path(__file__).parent
env = flyte.TaskEnvironment(name="plugin_lifecycle")
FAKE_KEY = "k3y" + "Q" * 37  # 40 characters, the shape of a real W&B API key


# ----------------------------------------------------------------------------- tasks


@wandb_init
@env.task
def attempt_task() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"attempt": int(os.environ.get("FLYTE_ATTEMPT_NUMBER", "0"))})
    return str(run.id)


_flaky_calls: list[int] = []


@wandb_init
@env.task(retries=1)
def flaky() -> str:
    run = get_wandb_run()
    assert run is not None
    _flaky_calls.append(1)
    run.log({"call": len(_flaky_calls)})
    if len(_flaky_calls) == 1:
        raise RuntimeError("first attempt fails")
    return str(run.id)


@wandb_init(id="chosen-id", resume="never")
@env.task
def user_id_task() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@wandb_init(run_mode="new")
@env.task
async def new_child() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@wandb_init
@env.task
async def auto_child() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@wandb_init
@env.task
async def id_parent() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [str(run.id), await new_child(), await auto_child()]


@wandb_init
def objective() -> list[Any]:
    run = get_wandb_run()
    assert run is not None
    run.log({"score": run.config["lr"] * 10})
    return [run.id, dict(run.config), run.sweep_id]


@wandb_init
@env.task
def sweep_host_task(param_path: str) -> list[Any]:
    outer = get_wandb_run()
    assert outer is not None
    os.environ.update(
        WANDB_SWEEP_ID="sw1", WANDB_RUN_ID="trial-1", WANDB_SWEEP_PARAM_PATH=param_path
    )
    try:
        trial = objective()
    finally:
        for var in ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):
            os.environ.pop(var, None)
    assert get_wandb_run() is outer
    return [outer.id, *trial]


@env.task
async def publishes_context() -> str:
    return json.dumps(dict(flyte.ctx().custom_context))


@wandb_init(project="parent-proj", entity="parent-team")
@env.task
async def parent_for_other_process() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [str(run.id), await publishes_context()]


ran_user_code: list[str] = []


@wandb_init
@env.task
def online_task() -> int:
    ran_user_code.append("online_task")
    return 1


@wandb_init(host="https://wandb.example.com")
@env.task
def hosted() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"x": 1})
    return str(run.settings.base_url)


@wandb_init(config={"note": "hello"})
@env.task
def secret_task() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"x": 1})
    print("task output")
    return json.dumps(dict(flyte.ctx().custom_context))


# ----------------------------------------------------------------------------- failures


@wandb_init
def raises(exc: BaseException) -> None:
    run = get_wandb_run()
    assert run is not None
    run.log({"before": 1})
    raise exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (KeyboardInterrupt(), 130),
        (SystemExit(3), 3),
        (SystemExit(0), 1),
        (TimeoutError("too slow"), 1),
        (ValueError("bad"), 1),
    ],
)
def test_every_exception_fails_the_run_and_propagates_unchanged(
    wandb_offline: Path, exc: BaseException, code: int
) -> None:
    reset_wandb()
    with pytest.raises(type(exc)) as info:
        raises(exc)
    assert info.value is exc
    rec = only(wandb_offline)
    assert rec.exit_code == code
    assert user_rows(rec) == [{"before": 1}]
    assert get_wandb_run() is None


@wandb_init
async def cancelled_function(started: asyncio.Event) -> None:
    run = get_wandb_run()
    assert run is not None
    run.log({"before": 1})
    started.set()
    await asyncio.sleep(60)


def test_cancellation_fails_the_run(wandb_offline: Path) -> None:
    reset_wandb()

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.ensure_future(cancelled_function(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    rec = only(wandb_offline)
    assert rec.exit_code not in (None, 0)
    assert user_rows(rec) == [{"before": 1}]


@pytest.mark.parametrize("scenario", ["sigterm", "sigterm-locked"])
def test_sigterm_marks_the_run_preempting(wandb_offline: Path, scenario: str) -> None:
    """A run started on the main thread (an async task), also while the plugin holds its own
    lock when the signal lands: the run is marked preempting and finished, and the process
    still ends by SIGTERM, well within the handler's budget."""
    from flyteplugins.wandb._preemption import PREEMPT_BUDGET_S

    started = time.monotonic()
    proc = _python(wandb_offline, scenario, check=False)
    assert proc.returncode == -15, proc.stderr[-2000:]
    assert time.monotonic() - started < 30 + PREEMPT_BUDGET_S
    rec = only(wandb_offline)
    assert rec.preempting
    assert rec.exit_code == 143
    assert user_rows(rec) == [{"before_sigterm": 1}]


def test_a_run_started_off_the_main_thread_gets_no_handler(wandb_offline: Path) -> None:
    """In a worker thread while the main thread runs an asyncio loop (as Flyte's task runtime runs
    a sync task): Python lets only the main thread set signal handlers, so the plugin installs
    none (documented: make the task ``async def`` to have its run marked preempted); the process
    ends by SIGTERM as it would without the plugin, its run neither preempted nor finished."""
    proc = _python(wandb_offline, "sigterm-thread", check=False)
    assert proc.returncode == -15, proc.stderr[-2000:]
    for rec in records(wandb_offline):
        assert not rec.preempting and rec.exit_code is None


def test_a_guest_in_the_users_process(wandb_offline: Path) -> None:
    """Importing decorated tasks changes neither the environment nor the SIGTERM handler; a run
    changes them only while it lives."""
    out = _last_json(_python(wandb_offline, "guest"))
    assert out == {
        "import_unchanged": True,
        "during": True,
        "sigterm_restored": True,
        "env_restored": True,
    }


# ----------------------------------------------------------------------------- ids, retries


def test_attempt_number_is_recorded_and_the_run_resumed(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_local(attempt_task, name="retry-run")
    monkeypatch.setenv("FLYTE_ATTEMPT_NUMBER", "1")
    second = run_local(attempt_task, name="retry-run")
    assert first == second
    (recs,) = by_id(wandb_offline).values()
    assert [r.config["flyte"]["attempt"] for r in recs] == [0, 1]
    assert [user_rows(r) for r in recs] == [[{"attempt": 0}], [{"attempt": 1}]]


def test_local_retry_reuses_the_run_id(wandb_offline: Path) -> None:
    _flaky_calls.clear()
    rid = run_local(flaky, name="flaky-run")
    (recs,) = by_id(wandb_offline).values()
    assert [r.run_id for r in recs] == [rid, rid]
    assert [r.exit_code for r in recs] == [1, 0]


def test_user_id_wins_and_is_not_inherited(wandb_offline: Path) -> None:
    assert run_local(user_id_task) == "chosen-id"
    assert only(wandb_offline).run_id == "chosen-id"


def test_context_id_is_used_once_not_by_new_children(wandb_offline: Path) -> None:
    parent, new, auto = run_local(id_parent, name="ids", custom_context=wandb_config(id="ctx-id"))
    assert parent == "ctx-id"
    assert auto == "ctx-id"
    assert new.startswith("ids-")
    assert set(by_id(wandb_offline)) == {"ctx-id", new}


def test_sweep_trial_gets_the_agent_run_not_the_task_run(wandb_offline: Path) -> None:
    from wandb.sdk.lib import config_util

    param_path = wandb_offline / "wandb" / "sweep-sw1" / "config-trial-1.yaml"
    param_path.parent.mkdir(parents=True)
    config_util.save_config_file_from_dict(str(param_path), {"lr": {"value": 0.5}})
    outer, trial_id, trial_config, sweep_id = run_local(sweep_host_task, str(param_path))
    assert trial_id == "trial-1"
    assert outer != trial_id
    assert trial_config["lr"] == 0.5
    assert sweep_id == "sw1"
    runs = by_id(wandb_offline)
    assert set(runs) == {outer, "trial-1"}
    assert user_rows(runs["trial-1"][0]) == [{"score": 5.0}]
    assert user_rows(runs[outer][0]) == []


# ----------------------------------------------------------------------------- processes


def _python(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "_plugin_tasks", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])


@pytest.mark.parametrize(("rank", "logs"), [("1", False), ("0", True)])
def test_non_zero_rank_under_auto_global_never_imports_wandb(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch, rank: str, logs: bool
) -> None:
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = _last_json(_python(wandb_offline, "rank"))
    assert out == {"logged": logs, "wandb_imported": logs}
    assert len(records(wandb_offline)) == (1 if logs else 0)


def test_child_in_another_process_joins_the_parent_run(wandb_offline: Path) -> None:
    parent_id, context_json = run_local(parent_for_other_process, name="xproc")
    context = json.loads(context_json)
    out = _last_json(_python(wandb_offline, "child", json.dumps(context)))
    child_id, project, label, primary = out["child"]
    assert child_id == parent_id
    assert project == "parent-proj"
    assert primary is False
    assert label  # the child's action name
    files = by_id(wandb_offline)[parent_id]
    # offline, each writer keeps its own file under the run's id; `wandb sync` merges them
    assert len(files) == 2
    writer = next(r for r in files if user_rows(r) == [{"from_other_process": 5}])
    assert writer.project == "parent-proj"
    assert writer.entity == "parent-team"
    # a joining child leaves the run's name, tags and config to the parent
    assert (writer.name, writer.tags, writer.config) == (None, [], {})


# ----------------------------------------------------------------------------- keys, hosts


def test_online_without_a_key_names_both_fixes(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("HOME", str(wandb_offline))
    monkeypatch.setenv("NETRC", str(wandb_offline / "no-netrc"))
    ran_user_code.clear()
    with pytest.raises(Exception, match="WANDB_API_KEY") as info:
        run_local(online_task)
    assert "WANDB_MODE=offline" in str(info.value)
    assert ran_user_code == []


def test_host_reaches_the_client_not_init_kwargs(wandb_offline: Path) -> None:
    assert run_local(hosted) == "https://wandb.example.com"
    assert only(wandb_offline).exit_code == 0


def test_api_key_is_never_written(wandb_offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    context_json = run_local(secret_task, custom_context=wandb_config(project="p"))
    assert FAKE_KEY not in context_json
    rec = only(wandb_offline)
    assert FAKE_KEY not in json.dumps(rec.config)
    for path in wandb_offline.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


# ----------------------------------------------------------------------------- decoration


# ----------------------------------------------------------------------------- all or nothing


@wandb_init(project="atomic", entity="team")
@env.task
async def atomic_task() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


def test_a_start_that_fails_after_the_run_began_leaves_nothing_open(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    import flyteplugins.wandb._call as decorator
    from flyteplugins.wandb import _state

    def broken(entries: Any) -> Any:
        raise RuntimeError("publishing to child tasks failed")

    monkeypatch.setattr(decorator, "override_custom_context", broken)
    with pytest.raises(Exception, match="publishing to child tasks failed"):
        run_local(atomic_task, name="atomic")
    import wandb

    assert type(wandb) is types.ModuleType  # the globals were released
    assert not _state.live_runs
    assert _state.current_active() is None
    reset_wandb()
    rec = only(wandb_offline)
    assert rec.exit_code not in (None, 0)  # the run that began was finished as failed


@wandb_init(project="atomic", entity="team")
def fails_inside(message: str) -> None:
    run = get_wandb_run()
    assert run is not None
    run.log({"before": 1})
    raise ValueError(message)


def test_a_failure_while_finishing_never_hides_the_users_error(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flyteplugins.wandb._backend as backend
    from flyteplugins.wandb import WandbFinishFailed

    real_finish = backend.finish_run

    def broken_finish(run: Any, exit_code: int, **kw: Any) -> None:
        real_finish(run, exit_code, **kw)
        raise OSError("disk full while finishing")

    monkeypatch.setattr(backend, "finish_run", broken_finish)
    reset_wandb()
    with (
        pytest.warns(WandbFinishFailed, match=r"disk full.*wandb sync .*offline-run-"),
        pytest.raises(ValueError, match="the user's own error"),
    ):
        fails_inside("the user's own error")
    reset_wandb()
    rec = only(wandb_offline)
    assert rec.exit_code == 1
    assert user_rows(rec) == [{"before": 1}]
