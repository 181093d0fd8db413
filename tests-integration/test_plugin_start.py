"""``start="background"`` (the default): the run's client starts while the task's code runs (real
local runs).

What the task does with its run before the client is ready (log, define_metric, config and
summary writes, setting the name) is kept and lands in the run in order, with the time it was
logged; ``wandb.log`` reaches the run too; a task that never logs gets its run; a start that
fails raises its own error at the end of the call, never silently; a pending run passes
``isinstance(run, wandb.Run)``; a task that changes ``WANDB_*`` while the client first reads
them (a fresh process, wandb imported only by the start) gets ``WandbEnvironmentChanged``;
``start`` is checked.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import flyte
import pytest
import wandb
from _plugin_helpers import only, records, run_local, user_rows

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb._start import PendingRun, check_start

env = flyte.TaskEnvironment(name="plugin_start")

# Holds the client's start (the runs of a process start one at a time) until the task has
# logged, so the calls are certainly made before the run exists.
_gate = threading.Event()


def _hold_the_start() -> Any:
    from flyteplugins.wandb import _backend

    return _backend._INIT_LOCK


@wandb_init(project="bg", start="background")
@env.task
def logs_before_ready() -> dict[str, Any]:
    run = get_wandb_run()
    assert run is not None
    pending = isinstance(run, PendingRun) and run._run is None
    stamped = time.time()
    run.define_metric("loss", summary="min")
    run.config.update({"lr": 0.1})
    run.config["layers"] = 3
    run.summary["note"] = "kept"
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1), "i": i})
    wandb.log({"via_module": 1})
    _gate.set()
    return {
        "id": run.id,
        "pending": pending,
        "stamped": stamped,
        "config": dict(run.config),  # waits for the run
        "dir": run.dir,
    }


def _run_with_the_start_held(task: Any, name: str) -> Any:
    """``run_local(task)`` with the client's start held until the task sets ``_gate``."""
    lock = _hold_the_start()
    _gate.clear()
    lock.acquire()
    releaser = threading.Thread(target=lambda: (_gate.wait(60), lock.release()))
    releaser.start()
    try:
        return run_local(task, name=name)
    finally:
        releaser.join()


def test_calls_before_the_run_exists_land_in_it_in_order(wandb_offline: Path) -> None:
    out = _run_with_the_start_held(logs_before_ready, "bg-order")
    assert out["pending"], "the run was already started: nothing was kept"
    rec = only(wandb_offline)
    assert rec.run_id == out["id"] and rec.exit_code == 0
    assert user_rows(rec) == [{"loss": 1.0 / (i + 1), "i": i} for i in range(5)] + [
        {"via_module": 1}
    ]
    # logged when called, not when replayed
    assert all(row["_timestamp"] < out["stamped"] + 5 for row in rec.history)
    assert rec.config["lr"] == 0.1 and rec.config["layers"] == 3
    assert out["config"]["lr"] == 0.1
    assert rec.summary["note"] == "kept"
    assert rec.summary["loss"] == {"min": pytest.approx(0.2)}


@wandb_init(project="bg", start="background")
@env.task
def never_logs() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


def test_a_task_that_never_logs_gets_its_run(wandb_offline: Path) -> None:
    rid = run_local(never_logs, name="bg-silent")
    rec = only(wandb_offline)
    assert rec.run_id == rid and rec.exit_code == 0


@wandb_init(project="bg", start="background", settings={"x_no_such_setting": 1})
@env.task
def bad_settings() -> str:
    ran.append("user code")
    return "done"


ran: list[str] = []


def test_a_failed_start_raises_at_the_end_of_the_call(wandb_offline: Path) -> None:
    ran.clear()
    with pytest.raises(Exception, match="x_no_such_setting"):
        run_local(bad_settings, name="bg-bad")
    assert ran == ["user code"]  # the code ran while the client started


@wandb_init(project="bg")
@env.task
def default_start() -> bool:
    return isinstance(get_wandb_run(), PendingRun)


def test_the_default_and_wandb_config_choose_the_start(wandb_offline: Path) -> None:
    assert run_local(default_start, name="bg-default") is True  # background is the default
    ctx = wandb_config(start="blocking")
    assert run_local(default_start, name="bg-ctx", custom_context=ctx) is False


@wandb_init(project="bg")
@env.task
def checks_the_class() -> dict[str, bool]:
    run = get_wandb_run()
    pending = isinstance(run, PendingRun) and run._run is None
    # what framework code checks before it takes a run (Lightning's logger does)
    out = {"pending": pending, "is_run": isinstance(run, wandb.Run)}
    _gate.set()
    return out


def test_a_pending_run_is_a_wandb_run_to_code_that_checks(wandb_offline: Path) -> None:
    out = _run_with_the_start_held(checks_the_class, "bg-class")
    assert out == {"pending": True, "is_run": True}


def test_start_is_checked() -> None:
    check_start("background")
    check_start(None)
    with pytest.raises(ValueError, match=r"start='later'.*'background', 'blocking'"):
        check_start("later")
    with pytest.raises(ValueError, match="start='soon'"):
        wandb_init(start="soon")
    with pytest.raises(ValueError, match="start='soon'"):
        wandb_config(start="soon")


# A fresh process whose task imports nothing of wandb itself: the background start is the
# client's first read of its settings, and the task changes a W&B variable at once (before the
# thread has even imported wandb, ~1 s), or, with argv[1] == "keep", changes nothing.
_LAZY_PROCESS = """
import os, sys
import flyte
from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="lazy")

@wandb_init(project="lazy")
@env.task
def task() -> str:
    if sys.argv[1] == "change":
        os.environ["WANDB_TAGS"] = "set-in-the-task"
    run = get_wandb_run()
    run.log({"x": 1})
    return str(run.id)

assert "wandb" not in sys.modules
flyte.init()
print("RUN", flyte.with_runcontext(mode="local", name="lazy-" + sys.argv[1]).run(task).outputs()[0])
"""


@pytest.mark.parametrize("change", [True, False], ids=["changes", "keeps"])
def test_a_change_of_wandb_variables_during_the_first_read_is_named(
    wandb_offline: Path, change: bool
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _LAZY_PROCESS, "change" if change else "keep"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=wandb_offline,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = "WandbEnvironmentChanged" in proc.stderr
    assert warned == change, proc.stderr[-3000:]
    if change:
        assert "the task changed WANDB_TAGS while its W&B run was starting" in proc.stderr
    [rec] = records(wandb_offline)  # the run started and recorded what the task logged
    assert proc.stdout.split()[-1] == rec.run_id
    assert rec.metric("x") == [1] and rec.exit_code == 0
