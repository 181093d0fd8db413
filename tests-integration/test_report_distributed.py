"""The W&B tab of a distributed task: one line per run the job created, with its last values.

The ``report_new`` case of the session's offline 1x2 ``torchrun`` job
(``conftest.torchrun_offline_1x2``: Flyte's clustered ``TorchRun`` task's own ``execute`` under a
remote Flyte task context in every worker, gloo ``all_reduce`` per step), ``run_mode="new"`` so
each rank has its own run; the real client writes offline runs. Global rank 0 writes the task's
report; the other rank hands it its part through the task's storage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _distributed_expect import REPORT_CASE, REPORT_STEPS, dump
from _report_html import parse_tab
from torchrun_harness import LaunchResult

from flyteplugins.wandb._records import read_runs

pytestmark = pytest.mark.timeout(600)


def test_a_two_rank_jobs_tab_lists_its_two_runs(torchrun_offline_1x2: LaunchResult) -> None:
    job = torchrun_offline_1x2
    results = job.case(REPORT_CASE.name)
    assert job.returncodes == [0], [Path(p).read_text()[-3000:] for p in job.logs]
    assert len(results) == 2 and all(r["ok"] for r in results), dump(results)
    (run_name,) = {r["run_name"] for r in results}
    [report] = list((job.out / "flyte" / run_name).rglob("report.html"))
    tab = parse_tab(report.read_text())
    header, *rows = tab.runs
    assert header == ["writer", "run", "project", "entity", "group", "state", "last values"]
    assert [r[0] for r in rows] == ["rank 0", "rank 1"]
    base = f"{run_name}-a0-"
    recs = {r.run_id: r for r in read_runs(job.out) if str(r.run_id).startswith(base)}
    assert sorted(r[1] for r in rows) == sorted(recs)  # every run the job created, once
    for row in rows:
        rec = recs[row[1]]
        assert row[5] == "finished (exit 0)"
        rank = int(row[0].split()[1])
        assert f"rank={rank}" in row[6]  # the rank's own last values
        assert f"loss={1.0 / REPORT_STEPS:.4g}" in row[6]
        assert rec.metric("rank") == [rank] * REPORT_STEPS
