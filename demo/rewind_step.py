"""The demo's preemption step: a task preempted once, retried by Flyte, rewound to its checkpoint.

A second local Flyte run after the pipeline: ``preempted`` logs steps 0..14, checkpoints at step
10 and fails; Flyte's local mode retries it in the same process and hands the retry the
checkpoint (``flyte.ctx().checkpoint``); the retry calls ``rewind_to(10)`` and logs 11..20.
Offline (as the whole demo is), the client records the rewind in the retry's run file and
``wandb sync`` (or the plugin's sync task, with ``sync="after"``) applies it on upload: the run
then holds steps 0..20 once each. Its W&B folders go under ``<out>/rewind`` (not the pipeline's
``<out>/wandb``), and what they recorded is checked here.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import flyte
from rich.console import Console
from rich.table import Table

from flyteplugins.wandb import get_wandb_run, rewind_to, wandb_config, wandb_init
from flyteplugins.wandb._records import read_runs

STEPS, CKPT, LOST_AT = 20, 10, 14

env = flyte.TaskEnvironment(name="wandb_demo_rewind")
_attempts: list[int] = []


@wandb_init(job_type="preempted")
@env.task(retries=1)
def preempted() -> str:
    attempt = len(_attempts)
    _attempts.append(attempt)
    checkpoint = flyte.ctx().checkpoint
    assert checkpoint is not None
    restored = checkpoint.load_sync()
    step0 = json.loads(restored.read_text())["step"] if restored else None
    run = rewind_to(step0) if step0 is not None else get_wandb_run()
    for step in range(0 if step0 is None else step0 + 1, STEPS + 1):
        run.log({"loss": 1.0 / (step + 1), "attempt": attempt})
        if step == CKPT:
            checkpoint.save_sync(json.dumps({"step": step}).encode())
        if attempt == 0 and step == LOST_AT:
            raise RuntimeError(f"demo: attempt 0 is preempted at step {step} (retried by Flyte)")
    return str(run.id)


def run(console: Console, out: Path) -> list[str]:
    """Run the step, print what each attempt recorded; return the problems found."""
    folder = out / "rewind"
    folder.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]preemption[/]: a retried task rewinds its run to its checkpoint")
    _attempts.clear()
    context = wandb_config(project="flyte-wandb-demo", dir=str(folder), tags=["demo", "rewind"])
    name = f"demo-rewind-{secrets.token_hex(3)}"
    result = flyte.with_runcontext(
        mode="local", name=name, custom_context=context, raw_data_path=str(out / "flyte-raw-data")
    ).run(preempted)
    run_id = str(result.outputs()[0])
    records = [r for r in read_runs(folder) if r.run_id == run_id and r.history]
    table = Table(title=f"W&B run {run_id}: one folder per attempt (offline)")
    for column in ("attempt", "steps logged", "exit code"):
        table.add_column(column)
    for r in records:
        steps = [row["_step"] for row in r.history]
        table.add_row(str(r.history[0]["attempt"]), f"{steps[0]}..{steps[-1]}", str(r.exit_code))
    console.print(table)
    console.print(
        f"the retry rewound the run to step {CKPT}: synced (`wandb sync` of both folders, or "
        "sync='after' and the plugin's sync task), it holds each step "
        f"0..{STEPS} once, steps {CKPT + 1}.. from the retry"
    )
    lost = [row["_step"] for r in records if r.exit_code for row in r.history]
    kept = [row["_step"] for r in records if r.exit_code == 0 for row in r.history]
    if _attempts != [0, 1] or lost != list(range(LOST_AT + 1)):
        return [f"the preempted attempt should log 0..{LOST_AT} and fail once, got {lost}"]
    if kept != list(range(CKPT + 1, STEPS + 1)):
        return [f"the retry should rewind to {CKPT} and log {CKPT + 1}..{STEPS}, got {kept}"]
    return []
