"""The demo's summary labels each W&B run by what it is (demo/report.py), without running the demo.

The records are built by hand in the shapes the demo's run files have: the pipeline's run, the
two per-rank runs of its torchrun task (grouped), a process that joined the pipeline's run, and
the sweep's trials (grouped under the sweep id).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from markdown_blocks import ROOT

sys.path.insert(0, str(ROOT / "demo"))
from report import Action, Facts, Recorded, runs_table
from rich.console import Console

from flyteplugins.wandb._records import RunRecord

SWEEP = "sw3ep"


def _run(
    run_id: str, *, action: str | None, group: str | None = None, writer: str = "owner"
) -> Recorded:
    config = {"flyte": {"action_name": action}} if action else {}
    record = RunRecord(path=Path(f"run-{run_id}.wandb"), run_id=run_id, group=group, config=config)
    return Recorded(record, "offline", writer)


@pytest.fixture
def facts(tmp_path: Path) -> Facts:
    runs = [
        _run("pipe", action="a0"),
        _run("pipe-a2-rank-0", action="a2", group="pipe-a2"),
        _run("pipe-a2-rank-1", action="a2", group="pipe-a2"),
        _run("pipe", action="a2", writer="shared writer"),
        _run("trial-1", action=None, group=SWEEP),
        _run("trial-2", action=None, group=SWEEP),
    ]
    actions = [Action("a0", "pipeline", "succeeded", []), Action("a2", "distributed", "ok", [])]
    result = {"run_id": "pipe", "sweep": {"sweep_id": SWEEP}}
    return Facts(runs=runs, actions=actions, result=result, out=tmp_path)


def test_each_run_is_labelled_by_what_it_is(facts: Facts) -> None:
    roles = [(r.run_id, facts.role(r)) for r in facts.runs]
    assert roles == [
        ("pipe", "-"),
        ("pipe-a2-rank-0", "rank run"),
        ("pipe-a2-rank-1", "rank run"),
        ("pipe", "shared writer"),
        ("trial-1", "sweep trial"),
        ("trial-2", "sweep trial"),
    ]


def test_the_runs_table_shows_the_labels(facts: Facts) -> None:
    console = Console(file=io.StringIO(), width=240, color_system=None)
    console.print(runs_table(facts))
    rows = {
        line.split()[1]: line for line in console.file.getvalue().splitlines()[3:] if "│" in line
    }
    assert "sweep trial" in rows["trial-1"] and "rank run" not in rows["trial-1"]
    assert "rank run" in rows["pipe-a2-rank-0"]


def test_without_the_pipeline_result_a_run_in_a_group_is_not_called_a_rank_run(
    facts: Facts,
) -> None:
    """The table printed after a failure has no actions and no result to tell groups apart."""
    bare = Facts(runs=facts.runs, actions=[], result={}, out=facts.out)
    assert {bare.role(r) for r in bare.runs if r.record.group} == {"in a group"}
