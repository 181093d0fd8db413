"""The flyteplugins-wandb demo: a local Flyte pipeline logging to W&B offline, no account needed.

Run it with ``nox -s demo`` or ``python demo/pipeline.py [--output DIR]``. It runs
``tasks.pipeline`` as a real local Flyte run (a training child, a 2-process torchrun step, a
6-trial bayes sweep on 2 parallel agents, a log download), then reads back what W&B recorded in
the ``.wandb`` files and what Flyte recorded for its UI, prints a summary and plots the loss
curves. Every file it writes (W&B folders included) goes under the output folder. The exit status
is non-zero if anything failed or was not recorded as expected.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from flyteplugins.wandb_sweeps import MAX_PARALLEL_AGENTS

ROOT = Path(__file__).resolve().parent
DEFAULT_OUTPUT = ROOT.parent / "demo-output"
PROJECT = "flyte-wandb-demo"
MARKER = ".flyteplugins-wandb-demo"


def isolate(out: Path) -> None:
    """Point W&B (offline), Flyte's local store and temporary files at ``out``.

    HOME moves too: the local run store Flyte's UI reads lives under it, and a W&B key or
    ``.netrc`` of the user's own cannot leak in.
    """
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_SERVICE", "WANDB_RUN_ID"):
        os.environ.pop(name, None)
    folders = {
        "WANDB_DIR": out,
        "WANDB_CONFIG_DIR": out / "wandb-config",
        "WANDB_CACHE_DIR": out / "wandb-cache",
        "WANDB_DATA_DIR": out / "wandb-data",
        "WANDB_ARTIFACT_DIR": out / "wandb-artifacts",
        "HOME": out / "home",
        "TMPDIR": out / "tmp",
    }
    for name, path in folders.items():
        path.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(path)
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    tempfile.tempdir = str(out / "tmp")


def prepare(out: Path) -> None:
    """Create ``out``, or clear it if an earlier demo made it; refuse any other non-empty folder."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ValueError(
                f"--output {out} is not empty and was not written by this demo; "
                "name a new or empty folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by demo/pipeline.py; cleared on the next run\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where every file goes (cleared first)"
    )
    parser.add_argument("--epochs", type=int, default=60, help="epochs of the training child")
    parser.add_argument("--trials", type=int, default=6, help="sweep trials")
    parser.add_argument("--agents", type=int, default=2, help="parallel sweep agents (1 to 20)")
    args = parser.parse_args(argv)
    limits = (("epochs", 1, None), ("trials", 1, None), ("agents", 1, MAX_PARALLEL_AGENTS))
    for name, low, high in limits:
        value = getattr(args, name)
        if value < low or (high is not None and value > high):
            allowed = f"{low} to {high}" if high is not None else f"at least {low}"
            parser.error(f"--{name} {value}: allowed values are {allowed}")
    return args


def run_pipeline(args: argparse.Namespace, out: Path, console: Console) -> tuple[str, str]:
    """Run the pipeline locally with a progress display; return (Flyte run name, its output)."""
    import flyte
    import tasks

    from flyteplugins.wandb import wandb_config

    totals = {
        "train": ("training child (PyTorch MLP), epochs", args.epochs),
        "distributed": ("torchrun: 2 CPU ranks, gloo", 1),
        "sweep": (
            f"sweep: {args.trials} trials on {args.agents} agents",
            args.trials * tasks.EPOCHS,
        ),
    }
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<40}"),
        BarColumn(),
        TextColumn("{task.completed:>4.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=console,
    )
    ids = {stage: progress.add_task(label, total=total) for stage, (label, total) in totals.items()}
    tasks.on_progress(lambda stage, amount: progress.advance(ids[stage], amount))
    run_name = f"demo-{secrets.token_hex(3)}"
    flyte.init(local_persistence=True)
    context = wandb_config(project=PROJECT, tags=["demo", "offline"])
    with progress:
        run = flyte.with_runcontext(
            mode="local",
            name=run_name,
            custom_context=context,
            raw_data_path=str(out / "flyte-raw-data"),  # File/Dir outputs stay in the folder
        ).run(
            tasks.pipeline,
            epochs=args.epochs,
            trials=args.trials,
            agents=args.agents,
            workdir=str(out),
        )
        result = str(run.outputs()[0])
    return run_name, result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.output.resolve()
    try:
        prepare(out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    isolate(out)
    sys.path.insert(0, str(ROOT))
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 150))  # logs and pipes: keep W&B ids whole
    console.rule("[bold]flyteplugins-wandb demo[/] (W&B offline, local Flyte)")
    started = time.monotonic()
    import report

    try:
        run_name, output = run_pipeline(args, out, console)
    except Exception as exc:
        console.print(f"[bold red]the pipeline failed:[/] {type(exc).__name__}: {exc}")
        report.show_runs(console, out)  # what W&B recorded up to the failure, failed runs in red
        return 1
    problems = report.show(console, out, run_name, output, args.trials, time.monotonic() - started)
    import rewind_step  # a task preempted once and rewound by its retry (docs/guide/preemption.md)

    problems += rewind_step.run(console, out)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
