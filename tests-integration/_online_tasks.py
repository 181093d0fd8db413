"""Tasks of the online tests, also runnable in a separate process (as in a cluster).

``python -m _online_tasks child '<custom_context JSON>'`` (with this folder on ``sys.path``) runs
the child task as a real local Flyte run in its own process, with the parent's context, and
prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import flyte

from flyteplugins.wandb import get_wandb_run, wandb_init

HERE = Path(__file__).resolve().parent
env = flyte.TaskEnvironment(name="online_tasks")


def identity() -> dict[str, Any]:
    action = flyte.ctx().action
    return {"run_name": action.run_name, "action_name": action.name}


@wandb_init(project="online-write", entity="ent", tags=["t1", "t2"], config={"lr": 0.5})
@env.task
def write_task(rows: int, fail: bool) -> dict[str, Any]:
    run = get_wandb_run()
    assert run is not None
    for i in range(rows):
        run.log({"loss": 1.0 / (i + 1), "i": i})
    if fail:
        raise ValueError("task code failed on purpose")
    return {"id": run.id, "url": run.url, **identity()}


@wandb_init
@env.task
def child_in_own_process(x: int) -> dict[str, Any]:
    run = get_wandb_run()
    assert run is not None
    run.log({"child_value": x})
    return {
        "id": run.id,
        "primary": run.settings.x_primary,
        "label": run.settings.x_label,
        "mode": run.settings.mode,
    }


def in_other_process(*args: str) -> dict[str, Any]:
    """Run ``python -m _online_tasks *args`` in a fresh process and return its JSON line."""
    environ = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    environ["PYTHONPATH"] = os.pathsep.join([str(HERE), environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "_online_tasks", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child process failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@wandb_init(project="online-shared", entity="ent", config={"who": "parent"})
@env.task
def parent_with_remote_child() -> dict[str, Any]:
    """Log, hand the context to a child running in another process (a pod), log again."""
    run = get_wandb_run()
    assert run is not None
    run.log({"parent_value": 1})
    context = json.dumps(dict(flyte.ctx().custom_context or {}))
    child = in_other_process("child", context)
    run.log({"parent_value": 2})
    return {"id": run.id, "child": child}


_attempts: list[int] = []


@wandb_init(project="online-resume", entity="ent")
@env.task(retries=1)
def flaky_task() -> dict[str, Any]:
    run = get_wandb_run()
    assert run is not None
    _attempts.append(1)
    attempt = len(_attempts)
    for i in range(3):
        run.log({"attempt": attempt, "i": i})
    if attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"id": run.id, "resumed": run.resumed, "step": run.step}


@wandb_init(project="online-resume-pod", entity="ent")
@env.task
def pod_attempt() -> dict[str, Any]:
    """Attempt 0 dies after logging; a later attempt (another process) resumes the run."""
    attempt = int(os.environ.get("FLYTE_ATTEMPT_NUMBER", "0"))
    run = get_wandb_run()
    assert run is not None
    for i in range(3):
        run.log({"attempt": attempt, "i": i})
    if attempt == 0:
        raise RuntimeError("the pod of attempt 0 was lost")
    return {"id": run.id, "resumed": run.resumed}


def timed_logging(run: Any, values: range) -> float:
    """Log each value; return the longest time one ``run.log`` call blocked the caller."""
    worst = 0.0
    for i in values:
        start = time.monotonic()
        run.log({"x": i})
        worst = max(worst, time.monotonic() - start)
    return worst


def main(argv: list[str]) -> None:
    if argv[0] == "child":
        flyte.init()
        context = json.loads(argv[1])
        outputs = (
            flyte.with_runcontext(mode="local", name="child-pod", custom_context=context)
            .run(child_in_own_process, 7)
            .outputs()
        )
        print(json.dumps(outputs[0]))
        return
    if argv[0] == "attempt":
        flyte.init()
        run = flyte.with_runcontext(mode="local", name=argv[1]).run(pod_attempt)
        print(json.dumps(run.outputs()[0]))
        return
    raise SystemExit(f"unknown scenario {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
