"""The demo's Flyte tasks: a pipeline with a training child, a torchrun step and a sweep.

``pipeline`` (``@wandb_init``, settings from the ``wandb_config`` context) owns the top-level W&B
run and calls, in order:

* ``train``: ``@wandb_init(run_mode="new", download_logs=True, report=True, log_outputs=True)``,
  its own run with one row per epoch, a W&B tab in its Flyte report, the trained model saved as
  a ``model`` artifact (``latest``/``best``) and returned as a ``Dir`` (logged by reference),
  packaged into a log folder after the task;
* ``evaluate``: ``@wandb_init(run_mode="new", log_inputs=True, report=True)`` takes that ``Dir``:
  its run records the use of the training task's artifact (W&B lineage: train -> evaluate);
* ``distributed``: a real 2-process ``torchrun`` job (see ``dist_worker.py``) whose ranks show
  ``run_mode="new"`` (a run per rank, one group) and ``auto`` (rank 0 only, into the parent's run);
* ``tune``: ``@wandb_sweep`` (bayes), with trials run by parallel agents, each a Flyte child task,
  driven by the local controller since there is no W&B server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flyte
import torch
import training
from flyte.io import Dir

from flyteplugins.wandb import (
    Wandb,
    get_wandb_run,
    log_model_checkpoint,
    report_sweep,
    wandb_init,
)
from flyteplugins.wandb_sweeps import run_agent_work, run_parallel_agents, wandb_sweep

HERE = Path(__file__).resolve().parent
NPROC = 2
EPOCHS = 60
SWEEP_METRIC = {"name": "val_loss", "goal": "minimize"}
SWEEP_PARAMETERS: dict[str, Any] = {
    "lr": {"distribution": "log_uniform_values", "min": 0.005, "max": 0.3},
    "hidden": {"values": [8, 16, 32]},
}

env = flyte.TaskEnvironment(name="wandb_demo")

Notify = Callable[[str, float], None]
_listeners: list[Notify] = []


def on_progress(listener: Notify) -> None:
    """Register ``listener(stage, amount)``, called as the tasks make progress."""
    _listeners.append(listener)


def _notify(stage: str, amount: float = 1) -> None:
    for listener in _listeners:
        listener(stage, amount)


def _log_epoch(stage: str) -> training.EpochCallback:
    run = get_wandb_run()
    assert run is not None, "@wandb_init gives this function a run"

    def log(metrics: dict[str, float]) -> None:
        run.log(metrics)
        _notify(stage)

    return log


# ------------------------------------------------------------------------------- training child


@wandb_init(run_mode="new", download_logs=True, job_type="train", report=True, log_outputs=True)
@env.task
async def train(epochs: int, lr: float, hidden: int, workdir: str) -> tuple[Dir, float]:
    """Fit the MLP, one W&B row per epoch; return the model folder and the held-out accuracy.

    The folder is a ``model`` artifact of the run (uploaded, aliases ``latest`` and ``best``)
    and, returned as a ``Dir``, an artifact that references it where Flyte stored it.
    """
    model, final = training.fit_model(
        lr=lr, hidden=hidden, epochs=epochs, on_epoch=_log_epoch("train")
    )
    folder = Path(workdir) / "checkpoints" / "train"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps({"hidden": hidden, "lr": lr}))
    log_model_checkpoint(folder, name="spirals-mlp", best=True, metadata=final)
    return await Dir.from_local(str(folder)), final["val_accuracy"]


@wandb_init(run_mode="new", job_type="eval", log_inputs=True, report=True)
@env.task
async def evaluate(model: Dir) -> float:
    """Load the trained model from the ``Dir`` and score it on the held-out points."""
    local = Path(await model.download())
    config = json.loads((local / "config.json").read_text())
    net = training.mlp(int(config["hidden"]))
    net.load_state_dict(torch.load(local / "model.pt"))
    data = training.spirals()
    loss, accuracy = training.evaluate(net, data.x_val, data.y_val)
    run = get_wandb_run()
    assert run is not None
    run.log({"eval/val_loss": loss, "eval/val_accuracy": accuracy})
    return accuracy


# ------------------------------------------------------------------------------- torchrun step

# The links a Flyte UI shows on the torchrun task: the group of the per-rank runs, and the run
# rank 0 logs to under auto/global scope (the parent's, since this task is a child of one).
DISTRIBUTED_LINKS = (
    Wandb(name="W&B: a run per rank (new)", run_mode="new", nnodes=1, nproc_per_node=NPROC),
    Wandb(name="W&B: rank 0 only (auto)", run_mode="auto", nnodes=1, nproc_per_node=NPROC),
)


@env.task(links=DISTRIBUTED_LINKS)
async def distributed(workdir: str) -> str:
    """Run ``dist_worker.py`` on ``NPROC`` CPU processes with torchrun; return what ranks saw."""
    tctx = flyte.ctx()
    assert tctx is not None
    action = tctx.action
    out = Path(workdir) / f"torchrun-{action.name}"
    out.mkdir(parents=True, exist_ok=True)
    spec = {
        "run_name": action.run_name,
        "action_name": action.name,
        "project": action.project,
        "domain": action.domain,
        "custom_context": dict(tctx.custom_context or {}),
    }
    (out / "spec.json").write_text(json.dumps(spec))
    log = out / "torchrun.log"
    with log.open("wb") as fh:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={NPROC}",
            str(HERE / "dist_worker.py"),
            str(out / "spec.json"),
            stdout=fh,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        code = await proc.wait()
    if code != 0:
        raise RuntimeError(f"torchrun exited with status {code}; its output is in {log}")
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(NPROC)]
    _notify("distributed")
    return json.dumps(ranks)


# ------------------------------------------------------------------------------- sweep


@wandb_init(job_type="trial")
def objective() -> None:
    """One sweep trial: the parameters the controller chose are in the run's config."""
    run = get_wandb_run()
    assert run is not None
    training.fit(
        lr=float(run.config["lr"]),
        hidden=int(run.config["hidden"]),
        epochs=EPOCHS,
        on_epoch=_log_epoch("sweep"),
    )


@env.task
def sweep_agent(work: str) -> str:
    """One sweep agent, a Flyte child task: runs the trials the controller handed it."""
    return run_agent_work(work, objective)


@wandb_sweep(method="bayes", metric=SWEEP_METRIC, parameters=SWEEP_PARAMETERS)
@env.task(report=True)
async def tune(agents: int, trials: int) -> str:
    """A bayes sweep of ``trials`` trials run by ``agents`` parallel agents; its trials table
    and the metric of each trial go into the task's Flyte report."""
    results = await run_parallel_agents(sweep_agent, agents, trials)
    if results is not None:
        report_sweep(results)
    return json.dumps(results)


# ------------------------------------------------------------------------------- the parent


@wandb_init(job_type="pipeline")
@env.task
async def pipeline(epochs: int, trials: int, agents: int, workdir: str) -> str:
    """The whole demo; returns the children's results as JSON."""
    run = get_wandb_run()
    assert run is not None
    model, accuracy = await train(epochs=epochs, lr=0.05, hidden=32, workdir=workdir)
    run.log({"train/val_accuracy": accuracy})
    evaluated = await evaluate(model)
    ranks = json.loads(await distributed(workdir=workdir))
    sweep = json.loads(await tune(agents=agents, trials=trials))
    best = sweep.get("best") or {}
    run.summary["sweep/best_val_loss"] = best.get("metric")
    return json.dumps(
        {
            "run_id": run.id,
            "train_val_accuracy": accuracy,
            "eval_val_accuracy": evaluated,
            "ranks": ranks,
            "sweep": sweep,
        }
    )
