"""The W&B tab of a distributed task: one line per run the job created, with its last values.

A real 3-process PyTorch Elastic job (``torchrun_harness``: the task's own ``execute`` under a
remote Flyte task context, workers started by ``elastic_launch``, gloo ``all_reduce`` per step),
``run_mode="new"`` so each rank has its own run; the real client writes offline runs. Global rank
0 writes the task's report; the other ranks hand it their part through the task's storage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _distributed_expect import offline_env
from _report_html import parse_tab
from torchrun_harness import Case, launch

from flyteplugins.wandb._records import read_runs

pytestmark = pytest.mark.timeout(600)
STEPS = 4


def test_a_three_rank_jobs_tab_lists_its_three_runs(tmp_path: Path) -> None:
    job = launch(
        tmp_path,
        [Case(name="report_new", run_mode="new", steps=STEPS, report=True)],
        nnodes=1,
        nproc_per_node=3,
        run_prefix="rep",
        env=offline_env(tmp_path),
    )
    assert job.returncodes == [0], [Path(p).read_text()[-3000:] for p in job.logs]
    [report] = list((tmp_path / "flyte").rglob("report.html"))
    tab = parse_tab(report.read_text())
    header, *rows = tab.runs
    assert header == ["writer", "run", "project", "entity", "group", "state", "last values"]
    assert [r[0] for r in rows] == ["rank 0", "rank 1", "rank 2"]
    recs = {r.run_id: r for r in read_runs(tmp_path)}
    assert sorted(r[1] for r in rows) == sorted(recs)  # every run the job created, once
    for row in rows:
        rec = recs[row[1]]
        assert row[5] == "finished (exit 0)"
        rank = int(row[0].split()[1])
        assert f"rank={rank}" in row[6]  # the rank's own last values
        assert f"loss={1.0 / STEPS:.4g}" in row[6]
        assert rec.metric("rank") == [rank] * STEPS
