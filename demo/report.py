"""The demo's summary: what W&B and Flyte recorded, read back from disk, plus the loss plot.

Nothing here trusts what the pipeline remembers: runs, groups, states and rows come from the
``run-<id>.wandb`` files (``flyteplugins.wandb._records``), links from the local run store that
Flyte's UI reads. :func:`check` lists every way the recordings differ from what the demo expects;
the demo exits non-zero if the list is not empty.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from flyteplugins.wandb._artifacts import INPUT_ARTIFACTS_KEY
from flyteplugins.wandb._records import RunRecord, read_runs, recorded_artifacts

# Flyte's local runs write each action's report (report.html) under this folder, per run name.
LOCAL_METADATA = Path("/tmp/flyte/metadata")
TAB_MARK = '<section class="fpw-wandb">'


@dataclass(frozen=True)
class Recorded:
    """One ``run-<id>.wandb`` file: a run, or one more writer of a run (offline shared mode)."""

    record: RunRecord
    wandb_mode: str
    writer: str

    @property
    def run_id(self) -> str:
        return self.record.run_id or "?"

    @property
    def state(self) -> str:
        rec = self.record
        if rec.exit_code is None:
            return "running (no exit record)"
        if rec.preempting:
            return f"preempted (exit {rec.exit_code})"
        return "finished" if rec.exit_code == 0 else f"failed (exit {rec.exit_code})"

    @property
    def action(self) -> str | None:
        flyte = self.record.config.get("flyte")
        return flyte.get("action_name") if isinstance(flyte, dict) else None


@dataclass(frozen=True)
class Action:
    """One Flyte action as the local run store recorded it."""

    name: str
    task: str
    status: str
    links: list[tuple[str, str]]


def recorded_runs(wandb_dir: Path) -> list[Recorded]:
    """Every run file under ``wandb_dir``, oldest first; later files of a run id are writers."""
    import wandb

    wandb.teardown()  # waits until the client has flushed every file it writes
    seen: set[str] = set()
    out: list[Recorded] = []
    # the folder names start with the time each writer started: the run's owner comes first
    for rec in sorted(read_runs(wandb_dir), key=lambda r: r.path.parent.name.split("-")[2]):
        folder = rec.path.parent.name
        mode = "offline" if folder.startswith("offline-") else "online"
        writer = "shared writer" if rec.run_id in seen else "owner"
        seen.add(rec.run_id or "")
        out.append(Recorded(rec, mode, writer))
    return out


def flyte_actions(run_name: str) -> list[Action]:
    """The actions of a local Flyte run, with the links its UI shows (``flyte.init``'s store)."""
    from flyte._persistence._run_store import RunStore

    return [
        Action(
            name=row.action_name,
            task=(row.task_name or "").rsplit(".", 1)[-1],
            status=row.status,
            links=[(str(n), str(u)) for n, u in json.loads(row.log_links or "[]")],
        )
        for row in RunStore.list_actions_for_run_sync(run_name)
    ]


def _min(values: Sequence[Any]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    return min(numbers) if numbers else None


@dataclass
class Facts:
    """What the demo shows and checks, gathered once."""

    runs: list[Recorded]
    actions: list[Action]
    result: dict[str, Any]
    out: Path

    def by_action(self, task: str) -> list[Recorded]:
        names = {a.name for a in self.actions if a.task == task}
        return [r for r in self.runs if r.action in names]

    @property
    def pipeline_run(self) -> str:
        return str(self.result["run_id"])

    @property
    def sweep_id(self) -> str:
        return str(self.result["sweep"]["sweep_id"])

    def trials(self) -> list[Recorded]:
        return [r for r in self.runs if r.record.group == self.sweep_id]

    def writers_of(self, run_id: str) -> list[Recorded]:
        """The extra writers of a run (processes that joined it), oldest first."""
        return [r for r in self.runs if r.run_id == run_id and r.writer != "owner"]

    def rank_runs(self) -> list[Recorded]:
        runs = [r for r in self.by_action("distributed") if r.run_id != self.pipeline_run]
        return sorted(runs, key=lambda r: r.run_id)

    def role(self, run: Recorded) -> str:
        """What a run file is in the demo, for the runs table and the summary."""
        if run.writer != "owner":
            return run.writer
        sweep = (self.result.get("sweep") or {}).get("sweep_id")
        if run.record.group is not None and run.record.group == sweep:
            return "sweep trial"
        if run in self.rank_runs():
            return "rank run"
        return run.record.job_type or ("in a group" if run.record.group else "-")

    def best_trial(self) -> Recorded | None:
        best = self.result["sweep"].get("best") or {}
        return next((r for r in self.trials() if r.run_id == best.get("run_id")), None)

    def downloads(self) -> list[Path]:
        return sorted((self.out / "tmp" / "wandb_runs").glob("wandb-run-*"))  # the default folder

    def reports(self) -> dict[str, Path]:
        """The Flyte report of each task with a W&B tab, copied into the output folder."""
        return dict(self.report_copies)

    report_copies: dict[str, Path] = field(default_factory=dict)


def check(facts: Facts, trials: int) -> list[str]:
    """Every way what was recorded differs from what the demo ran."""
    problems: list[str] = []
    owners = [r for r in facts.runs if r.writer == "owner"]
    for r in facts.runs:
        if r.state != "finished":
            problems.append(f"W&B run {r.run_id} ({r.writer}) is {r.state}")
    if facts.pipeline_run not in {r.run_id for r in owners}:
        problems.append(f"the pipeline's run {facts.pipeline_run} was not recorded")
    train = facts.by_action("train")
    if len(train) != 1 or not train[0].record.metric("loss"):
        problems.append(f"expected 1 training run with loss rows, found {len(train)}")
    ranks = facts.rank_runs()
    if len(ranks) != 2 or len({r.record.group for r in ranks}) != 1:
        problems.append(f"expected 2 per-rank runs in one group, found {len(ranks)}")
    joined = facts.writers_of(facts.pipeline_run)
    if [r.record.metric("rank") for r in joined] != [[0] * len(joined[0].record.history)]:
        problems.append("rank 0 (auto), and only rank 0, should write into the pipeline's run")
    got = facts.trials()
    if len(got) != trials:
        problems.append(f"expected {trials} sweep trials, W&B recorded {len(got)}")
    best = facts.best_trial()
    metric = facts.result["sweep"]["metric"]["name"]
    recorded_best = min((_min(r.record.metric(metric)) or float("inf") for r in got), default=None)
    if best is None:
        problems.append("the sweep's best trial is not among the recorded trials")
    elif _min(best.record.metric(metric)) != recorded_best:
        problems.append(f"the sweep's best trial {best.run_id} does not have the lowest {metric}")
    for a in facts.actions:
        if a.status != "succeeded":
            problems.append(f"Flyte action {a.name} ({a.task}) {a.status}")
    for task in ("pipeline", "train", "evaluate", "distributed", "tune"):
        if not any(a.links for a in facts.actions if a.task == task):
            problems.append(f"Flyte recorded no W&B link for the task {task}")
    downloads = facts.downloads()
    if not downloads:
        problems.append("download_logs=True left no log folder")
    problems += check_reports_and_lineage(facts)
    for folder in downloads:
        report = folder / "download.json"
        if not report.is_file():
            problems.append(f"{folder} has no download.json")
        elif json.loads(report.read_text()).get("failed"):
            problems.append(f"some files of {folder.name} failed to download")
    return problems


def copy_reports(facts: Facts, run_name: str) -> None:
    """Copy every report with a W&B tab to ``<out>/reports/<task>.html``."""
    tasks = {a.name: a.task for a in facts.actions}
    target = facts.out / "reports"
    for path in sorted((LOCAL_METADATA / run_name).rglob("report.html")):
        text = path.read_text()
        task = tasks.get(path.parent.name)
        if task and TAB_MARK in text:
            target.mkdir(exist_ok=True)
            copy = target / f"{task}.html"
            copy.write_text(text)
            facts.report_copies[task] = copy


def check_reports_and_lineage(facts: Facts) -> list[str]:
    """The W&B tabs of train and evaluate, and the artifacts linking them."""
    problems: list[str] = []
    reports = facts.reports()
    for task in ("train", "evaluate"):
        if task not in reports:
            problems.append(f"the Flyte report of {task} has no W&B tab")
    train = facts.by_action("train")
    evaluate = facts.by_action("evaluate")
    if len(train) != 1 or len(evaluate) != 1:
        return [*problems, "expected one train and one evaluate run"]
    arts = {a["name"]: a for a in recorded_artifacts(train[0].record.path)}
    model = arts.get("spirals-mlp")
    if model is None or model["type"] != "model" or model["aliases"] != ["best", "latest"]:
        problems.append("the trained model was not logged as a model artifact (latest, best)")
    out = arts.get("train-o0")
    if out is None or not all(e["ref"].startswith("file://") for e in out["entries"]):
        problems.append("the model Dir returned by train was not logged by reference")
    used = (evaluate[0].record.config.get(INPUT_ARTIFACTS_KEY) or {}).get("model")
    if out is not None and (used is None or used.get("digest") != out["digest"]):
        problems.append("evaluate's run does not record its use of train's artifact")
    if "train" in reports and 'data-series="loss"' not in reports["train"].read_text():
        problems.append("the W&B tab of train has no loss chart")
    return problems


def reports_panel(facts: Facts) -> Panel:
    lines = [f"{task:<9} {path}" for task, path in sorted(facts.reports().items())]
    train = facts.by_action("train")
    if train:
        for a in recorded_artifacts(train[0].record.path):
            refs = sum(1 for e in a["entries"] if e["ref"])
            lines.append(
                f"artifact  {a['name']} ({a['type']}, {', '.join(a['aliases']) or '-'}): "
                f"{len(a['entries'])} files, {refs} by reference"
            )
    evaluate = facts.by_action("evaluate")
    if evaluate:
        used = evaluate[0].record.config.get(INPUT_ARTIFACTS_KEY) or {}
        for name, entry in used.items():
            lines.append(f"lineage   evaluate({name}) uses {entry['artifact']}")
    lines.append("open a report in a browser to see the W&B tab: run, charts, artifacts")
    return Panel("\n".join(lines), title="Flyte reports with a W&B tab", title_align="left")


# ------------------------------------------------------------------------------- rendering


def _writer_label(rec: RunRecord) -> str:
    ranks = sorted(set(rec.metric("rank")))
    return f"torchrun rank {', '.join(map(str, ranks))}" if ranks else "-"


def runs_table(facts: Facts) -> Table:
    tasks = {a.name: a.task for a in facts.actions}
    table = Table(title="W&B runs (read back from the .wandb files)", title_justify="left")
    for name in ("run id", "group", "role", "mode", "state", "rows", "Flyte task"):
        table.add_column(name, overflow="fold", no_wrap=name in ("run id", "mode", "rows"))
    for r in facts.runs:
        rec = r.record
        table.add_row(
            r.run_id,
            rec.group or "-",
            facts.role(r),
            r.wandb_mode,
            r.state,
            str(len(rec.history)),
            tasks.get(r.action or "", "-") if r.writer == "owner" else _writer_label(rec),
            style="" if r.state == "finished" else "red",
        )
    return table


def ranks_table(facts: Facts) -> Table:
    """What ``get_wandb_run()`` returned in each torchrun worker, under each setting."""
    table = Table(
        title="torchrun ranks: the run get_wandb_run() returned in each worker",
        title_justify="left",
    )
    table.add_column("rank")
    table.add_column('@wandb_init(run_mode="new")', no_wrap=True)
    table.add_column('@wandb_init(run_mode="auto", rank_scope="global")', no_wrap=True)
    for seen in facts.result["ranks"]:
        by_tag = {s["tag"]: s for s in seen}
        table.add_row(
            str(by_tag["new"]["rank"]),
            by_tag["new"]["run_id"] or "None",
            by_tag["auto"]["run_id"] or "None (this rank does not log)",
        )
    return table


def links_table(facts: Facts) -> Table:
    table = Table(title="Links the Flyte UI shows (recorded by Flyte)", title_justify="left")
    table.add_column("task")
    table.add_column("link")
    table.add_column("url", overflow="fold")
    for a in facts.actions:
        for name, url in a.links:
            table.add_row(a.task, name, url)
    return table


def sweep_table(facts: Facts) -> Table:
    metric = facts.result["sweep"]["metric"]["name"]
    best = facts.best_trial()
    table = Table(
        title=f"Sweep {facts.sweep_id} (bayes, local controller): best {metric} of each trial",
        title_justify="left",
    )
    for name in ("trial run", "lr", "hidden", f"best {metric}", ""):
        table.add_column(name)
    rows = sorted(facts.trials(), key=lambda r: _min(r.record.metric(metric)) or float("inf"))
    for r in rows:
        cfg = r.record.config
        value = _min(r.record.metric(metric))
        is_best = best is not None and r.run_id == best.run_id
        table.add_row(
            r.run_id,
            f"{cfg.get('lr', float('nan')):.4g}",
            str(cfg.get("hidden", "?")),
            "-" if value is None else f"{value:.4f}",
            "[bold green]best[/]" if is_best else "",
            style="bold" if is_best else "",
        )
    return table


def files_panel(facts: Facts, plot_path: Path | None, wall_s: float) -> Panel:
    out = facts.out
    lines = [
        f"output folder     {out}",
        f"W&B offline runs  {out / 'wandb'}  ({len(facts.runs)} run files)",
    ]
    lines += [f"downloaded logs   {p}" for p in facts.downloads()]
    lines += [f"torchrun output   {p}" for p in sorted(out.glob("torchrun-*/torchrun.log"))]
    if plot_path is not None:
        lines.append(f"loss curves       {plot_path}")
    lines += [f"Flyte run store   {p}" for p in sorted((out / "home").rglob("*.db"))]
    lines += [
        "",
        "upload them to W&B (needs an account and WANDB_API_KEY):",
        f"  wandb sync {out / 'wandb'}",
        "",
        f"finished in {wall_s:.1f} s",
    ]
    return Panel("\n".join(lines), title="files", title_align="left")


def write_summary(facts: Facts, path: Path, plot_path: Path | None, problems: list[str]) -> None:
    """What the summary shows, as JSON (for scripts and the demo's test)."""
    best = facts.best_trial()
    summary = {
        "runs": [
            {
                "id": r.run_id,
                "group": r.record.group,
                "job_type": r.record.job_type,
                "role": facts.role(r),
                "writer": r.writer,
                "mode": r.wandb_mode,
                "state": r.state,
                "rows": len(r.record.history),
                "file": str(r.record.path),
            }
            for r in facts.runs
        ],
        "links": [
            {"action": a.name, "task": a.task, "name": n, "url": u}
            for a in facts.actions
            for n, u in a.links
        ],
        "sweep_id": facts.sweep_id,
        "best_trial": None
        if best is None
        else {
            "id": best.run_id,
            "config": {k: v for k, v in best.record.config.items() if k != "flyte"},
        },
        "downloads": [str(p) for p in facts.downloads()],
        "reports": {task: str(path) for task, path in facts.reports().items()},
        "plot": None if plot_path is None else str(plot_path),
        "sync": f"wandb sync {facts.out / 'wandb'}",
        "problems": problems,
    }
    path.write_text(json.dumps(summary, indent=2))


def plot(facts: Facts, path: Path) -> Path:
    """Loss curves read back from the recorded runs: training child, torchrun ranks, trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for r in facts.by_action("train"):
        ax.plot(r.record.metric("loss"), label="train loss")
        ax.plot(r.record.metric("val_loss"), label="validation loss")
    ax.set_title("training child (run_mode=new)")
    ax = axes[1]
    for r in facts.rank_runs():
        ax.plot(r.record.metric("rank_loss"), label=f"rank {r.run_id.rsplit('-', 1)[-1]}: own loss")
    for r in facts.writers_of(facts.pipeline_run):
        if r.record.metric("rank"):
            ax.plot(r.record.metric("loss"), "k--", label="mean loss (rank 0, auto)")
    ax.set_title("torchrun, 2 ranks (per-rank runs + rank 0)")
    ax = axes[2]
    best = facts.best_trial()
    for r in facts.trials():
        cfg = r.record.config
        is_best = best is not None and r.run_id == best.run_id
        ax.plot(
            r.record.metric("val_loss"),
            linewidth=2.5 if is_best else 1.0,
            label=f"lr={cfg.get('lr', 0):.3g} hidden={cfg.get('hidden')}"
            + (" (best)" if is_best else ""),
        )
    ax.set_title(f"sweep {facts.sweep_id}: validation loss")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (log scale)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("flyteplugins-wandb demo: loss curves read back from the .wandb files")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def show_runs(console: Console, out: Path) -> None:
    """The runs table alone (after a failure: whatever W&B recorded until then)."""
    console.print(runs_table(Facts(recorded_runs(out / "wandb"), [], {}, out)))
    console.print(f"W&B files: {out / 'wandb'}")


def show(
    console: Console, out: Path, run_name: str, output: str, trials: int, wall_s: float
) -> list[str]:
    """Read back, print the summary, write the plot; return the problems found."""
    facts = Facts(
        runs=recorded_runs(out / "wandb"),
        actions=flyte_actions(run_name),
        result=json.loads(output),
        out=out,
    )
    copy_reports(facts, run_name)
    problems = check(facts, trials)
    plot_path: Path | None = None
    try:
        plot_path = plot(facts, out / "loss_curves.png")
    except Exception as exc:
        problems.append(f"the plot failed: {type(exc).__name__}: {exc}")
    console.print(runs_table(facts))
    console.print(ranks_table(facts))
    console.print(links_table(facts))
    console.print(sweep_table(facts))
    best = facts.best_trial()
    if best is not None:
        params = {k: v for k, v in best.record.config.items() if k != "flyte"}
        console.print(f"[bold]best trial[/] {best.run_id}: config {params}")
    console.print(reports_panel(facts))
    console.print(files_panel(facts, plot_path, wall_s))
    write_summary(facts, out / "summary.json", plot_path, problems)
    if problems:
        console.print(Panel("\n".join(problems), title="[red]problems", border_style="red"))
    else:
        console.print("[bold green]all runs recorded and finished[/]")
    return problems
