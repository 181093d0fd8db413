"""Real jobs for the rewind and sync tests: Flyte local runs with retries and Elastic jobs.

* :data:`env` tasks run in the test process under ``flyte.with_runcontext(mode="local")``: Flyte's
  local controller retries a failed attempt in the same process and hands it the previous
  attempt's checkpoint (``flyte.ctx().checkpoint``), as a cluster would.
* ``python _rewind_jobs.py SPEC.json`` is the pod of an Elastic task (``flyteplugins-pytorch``):
  the task's real ``execute`` under a remote-mode task context (``torchrun_harness``'s), so
  ``torch.distributed``'s elastic agent starts the workers, and restarts them all after a
  failure (``max_restarts``), each running the decorated task function.

Training is the same everywhere (:func:`train_steps`): steps ``start..steps`` logging
``{"x": step, "attempt": n, "rank": r}``, a checkpoint holding the step saved at ``ckpt``, and
the first attempt failing right after logging step ``fail_at``. A later attempt restores the
checkpoint and calls ``rewind_to(step)`` before logging.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flyte
from torchrun_harness import MONITOR_INTERVAL_S

from flyteplugins.wandb import get_wandb_run, rewind_to, wandb_init, wandb_sync_task

STEPS, FAIL_AT, CKPT = 100, 70, 50


def train_steps(
    *,
    attempt: int,
    restored: int | None,
    save: Callable[[int], None],
    rank: int = 0,
    steps: int = STEPS,
    fail_at: int | None = FAIL_AT,
    ckpt: int = CKPT,
    before_fail: Callable[[], bool] | None = None,
) -> str:
    run = rewind_to(restored) if restored is not None else get_wandb_run()
    assert run is not None
    start = 0 if restored is None else restored + 1
    for step in range(start, steps + 1):
        run.log({"x": step, "attempt": attempt, "rank": rank})
        if step == ckpt:
            save(step)
        if attempt == 0 and step == fail_at:
            if before_fail is not None and not before_fail():
                return str(run.id)  # this rank ends; another one's failure restarts the job
            raise RuntimeError(f"attempt {attempt} of rank {rank} is lost at step {step}")
    return str(run.id)


# ----------------------------------------------------------------------- Flyte local runs

env = flyte.TaskEnvironment(name="rewind_jobs")
wandb_sync = wandb_sync_task(env)
_attempts: list[int] = []


def _flyte_checkpoint() -> tuple[int | None, Callable[[int], None]]:
    cp = flyte.ctx().checkpoint
    assert cp is not None
    path = cp.load_sync()
    restored = json.loads(path.read_text())["step"] if path is not None else None
    return restored, lambda step: cp.save_sync(json.dumps({"step": step}).encode())


def _local_attempt(**kwargs: Any) -> str:
    attempt = len(_attempts)
    _attempts.append(attempt)
    restored, save = _flyte_checkpoint()
    return train_steps(attempt=attempt, restored=restored, save=save, **kwargs)


@wandb_init(project="rewind-online", entity="ent")
@env.task(retries=1)
def preempted_train() -> str:
    """Fails at step 70 after checkpointing at 50; the retry rewinds to 50 and logs to 100."""
    return _local_attempt()


@wandb_init(project="rewind-offline", entity="ent", sync="after")
@env.task(retries=1)
def preempted_offline_train() -> str:
    """The same, offline (sync='after'): the rewind is recorded and applied by the sync."""
    return _local_attempt()


@env.task
async def train_then_sync() -> dict[str, Any]:
    """A workflow: the sync='after' task, then the sync task twice (the second finds nothing)."""
    from flyteplugins.wandb import sync_wandb

    run_id = await preempted_offline_train.aio()
    first = await sync_wandb(wandb_sync)
    again = await sync_wandb(wandb_sync)
    return {"run_id": run_id, "first": first, "again": again}


def _ten_rows_unless_resumed() -> Any:
    """The call's run after logging ``x`` at steps 0..9 when new; ``None`` when it was resumed."""
    run = get_wandb_run()
    assert run is not None
    if run.resumed:
        return None
    for i in range(10):
        run.log({"x": i})
    return run


@wandb_init(project="rewind-bad", entity="ent")
@env.task
def rewind_bad(step: int) -> str:
    """Logs 10 rows (0..9), then a second call of the same action rewinds to ``step``."""
    run = _ten_rows_unless_resumed() or rewind_to(step)
    return str(run.id)


@wandb_init(project="rewind-tab", entity="ent", report=True)
@env.task
def rewind_with_tab() -> str:
    """Logs 10 rows; a second call of the same run rewinds to step 4 and logs ``y`` three times:
    the task's W&B tab charts the rows of the rewound run."""
    run = _ten_rows_unless_resumed()
    if run is None:
        run = rewind_to(4)  # the run object the task logs to from here on
        for i in range(3):
            run.log({"y": 100 + i})
    return str(run.id)


@wandb_init(project="sync-down", entity="ent", sync="after")
@env.task
def offline_steps(n: int) -> str:
    """Logs ``n`` rows offline; returns the Flyte run's storage (where its folder was saved)."""
    run = get_wandb_run()
    assert run is not None
    for i in range(n):
        run.log({"x": i})
    return str(flyte.ctx().run_base_dir)


# ----------------------------------------------------------------------- Elastic jobs


def elastic_body(case: dict[str, Any]) -> str:
    """One worker: ``TORCHELASTIC_RESTART_COUNT`` is the attempt; checkpoints are per-rank
    files (a shared volume in a cluster)."""
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    out = Path(case["out"])
    ckpt_file = out / f"ckpt-rank{rank}.json"
    restored = json.loads(ckpt_file.read_text())["step"] if ckpt_file.exists() else None
    world = int(os.environ["WORLD_SIZE"])
    # a store of this attempt's own: nothing a stopped attempt left in the agent's store is read
    store = dist.FileStore(str(out / f"pg-store-{attempt}"), world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)

    def save(step: int) -> None:
        ckpt_file.write_text(json.dumps({"step": step}))

    def before_fail() -> bool:
        """Rank 0 fails (after the others ended their attempt); torch's elastic agent then
        restarts every worker."""
        dist.barrier()  # every rank logged its last step of the lost attempt
        dist.destroy_process_group()
        if rank == 0:
            time.sleep(3)  # the other ranks' runs finish before the agent stops them
        return rank == 0

    value = train_steps(
        attempt=attempt,
        restored=restored,
        save=save,
        rank=rank,
        steps=case["steps"],
        fail_at=case["fail_at"],
        before_fail=before_fail,
    )
    if dist.is_initialized():
        dist.destroy_process_group()
    return value


def _elastic_task(case: dict[str, Any]) -> Any:
    from flyteplugins.pytorch.task import Elastic

    job_env = flyte.TaskEnvironment(
        name=f"rewind_{case['name']}",
        plugin_config=Elastic(
            nnodes=1,
            nproc_per_node=case["nproc"],
            max_restarts=case["max_restarts"],
            monitor_interval=MONITOR_INTERVAL_S,  # type: ignore[arg-type]
        ),
    )

    def train() -> str:
        return elastic_body(case)

    train.__name__ = train.__qualname__ = f"train_{case['name']}"
    return wandb_init(**case["wandb"])(job_env.task(train))


def run_elastic(spec_path: str) -> int:
    import flyte._context
    from torchrun_harness import _task_context

    from flyteplugins.wandb import wandb_config

    case = json.loads(Path(spec_path).read_text())
    task = _elastic_task(case)
    root = Path(case["out"]) / "flyte"
    tctx = _task_context(case["run_name"], "a0", dict(wandb_config()), root)
    result: dict[str, Any] = {"run_base_dir": str(root)}
    try:
        with flyte._context.internal_ctx().replace_task_context(tctx):
            result["value"] = asyncio.run(task.execute())
        result["ok"] = True
    except Exception as exc:
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"
    Path(case["out"], "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_elastic(sys.argv[1]))
