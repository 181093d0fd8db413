"""Tasks of the report and artifact tests: real Flyte tasks with ``@wandb_init`` extras."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import flyte
from flyte.io import Dir, File

from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="wandb_report_tests")


@wandb_init(project="report-tests", entity="local", report=True)
@env.task
async def train(steps: int) -> str:
    """Logs ``loss``, ``acc`` every step and ``lr`` every other step; sets a summary value."""
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        row = {"loss": 1.0 / (i + 1), "acc": i / steps}
        if i % 2 == 0:
            row["lr"] = 0.1 * (0.9**i)
        run.log(row)
    run.summary["best_acc"] = (steps - 1) / steps
    return str(run.id)


@wandb_init(project="report-tests", entity="local", report=True)
@env.task
async def train_fails(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"loss": float(i)})
    raise RuntimeError("failed on purpose")


@wandb_init(project="report-tests", entity="local", report=True)
@env.task
def train_sync(steps: int) -> str:
    """A synchronous task (Flyte runs it on a thread) logging through ``wandb.log``."""
    import wandb

    for i in range(steps):
        wandb.log({"x": float(i * i)})
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


# -- artifacts -------------------------------------------------------------------------------------


@dataclass
class Prepared:
    data: Dir
    rows: int
    note: str


@wandb_init(project="artifact-tests", entity="local", run_mode="new", log_outputs=True, report=True)
@env.task
async def produce(rows: int) -> Prepared:
    """Writes a folder of two files, returns it as a ``Dir`` inside a dataclass."""
    local = Path(flyte.ctx().raw_data_path.get_random_remote_path("data"))  # type: ignore[union-attr]
    local.mkdir(parents=True, exist_ok=True)
    (local / "train.csv").write_text("\n".join(str(i) for i in range(rows)))
    (local / "sub").mkdir(exist_ok=True)
    (local / "sub" / "meta.txt").write_text(f"rows={rows}")
    return Prepared(data=await Dir.from_local(str(local)), rows=rows, note="two files")


@wandb_init(project="artifact-tests", entity="local", run_mode="new", log_inputs=True, report=True)
@env.task
async def consume(prepared: Prepared, lr: float, api_token: str) -> int:
    run = get_wandb_run()
    assert run is not None
    files = [f async for f in prepared.data.walk()]
    run.log({"files": float(len(files))})
    return len(files)


@wandb_init(project="artifact-tests", entity="local")
@env.task
async def pipeline(rows: int) -> int:
    prepared = await produce(rows)
    return await consume(prepared, 0.01, "not-a-real-token")


@wandb_init(project="artifact-tests", entity="local", log_outputs=True)
@env.task
async def make_file(text: str) -> tuple[File, int]:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"out-{text}.txt"
    path.write_text(text)
    return await File.from_local(str(path)), len(text)


@wandb_init(project="report-tests", entity="local", report=True)
@env.task
def train_then_look(steps: int) -> str:
    """Logs, then returns its own report as it stands before the call ends ("" when none)."""
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"loss": float(i)})
    ctx = flyte.ctx()
    assert ctx is not None
    report = Path(ctx.output_path) / "report.html"
    return report.read_text() if report.is_file() else ""


@wandb_init(project="report-tests", entity="local", report=True)
@env.task
async def train_with_checkpoint(steps: int) -> str:
    from flyteplugins.wandb import log_model_checkpoint

    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"loss": 1.0 / (i + 1)})
    folder = Path("ckpt-report")
    folder.mkdir(exist_ok=True)
    (folder / "weights.bin").write_bytes(b"\0" * 64)
    log_model_checkpoint(str(folder), name="report-model")
    return str(run.id)
