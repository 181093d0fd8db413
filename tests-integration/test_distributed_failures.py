"""Failing ranks, a rank the agent kills, and Elastic restarts (1 node x 2 processes, offline).

* In the session's offline ``torchrun`` job (``conftest.torchrun_offline_1x2``), whose workers run
  every case in turn: a rank that raises marks its own run failed and keeps its rows; in shared
  mode a failed secondary fails the shared run (the primary waits for every secondary's exit
  code, through the job's c10d store, before it finishes).
* In the session's real Elastic job (``conftest.elastic_1x2``: a launcher calling the ``Elastic``
  task's own ``execute``, workers started by ``elastic_launch``, one case each): a rank that
  fails while the other is still busy fails the job the way Flyte reports it
  (``RuntimeError("PyTorch worker(s) failed: ...")``) and the agent stops the survivor with
  SIGTERM, which finishes its run as preempted; and an Elastic restart
  (``TORCHELASTIC_RESTART_COUNT`` > 0) resumes the same runs: no new ids.
"""

from __future__ import annotations

import pytest
from _distributed_expect import STEPS, dump, labels_of, records_by_id, rows_by_rank
from torchrun_harness import LaunchResult

pytestmark = pytest.mark.timeout(900)


def _base(job: LaunchResult, case: str) -> str:
    (run_name,) = {r["run_name"] for r in job.case(case)}
    return f"{run_name}-a0"


def _rank_failed(job: LaunchResult, case: str, rank: int) -> None:
    """In the torchrun job: ``rank``'s task raised the body's error, the other rank's returned."""
    results = {r["rank"]: r for r in job.case(case)}
    assert sorted(results) == [0, 1], dump(results)
    assert results[rank]["ok"] is False, dump(results)
    assert results[rank]["error"] == f"RuntimeError: rank {rank} fails on purpose", dump(results)
    assert all(r["ok"] for k, r in results.items() if k != rank), dump(results)


def _job_failed(job: LaunchResult, case: str, rank: int) -> None:
    """In the Elastic job: the launcher's execute failed as Flyte reports a failed worker."""
    (result,) = job.case(case)
    assert result["ok"] is False, dump(result)
    assert result["error"].startswith("RuntimeError: PyTorch worker(s) failed"), result["error"]
    assert f"rank {rank}: exitcode=1" in result["error"], result["error"]


def test_a_failing_owner_marks_its_run_failed_and_keeps_its_rows(
    torchrun_offline_1x2: LaunchResult,
) -> None:
    job = torchrun_offline_1x2
    _rank_failed(job, "auto_rank0_fails", 0)
    (rec,) = records_by_id(job.out)[_base(job, "auto_rank0_fails")]
    assert rec.exit_code == 1
    assert [row["step_i"] for row in rec.history] == list(range(STEPS))


def test_a_failing_rank_fails_its_own_run_only(torchrun_offline_1x2: LaunchResult) -> None:
    job = torchrun_offline_1x2
    _rank_failed(job, "new_rank1_fails", 1)
    runs = records_by_id(job.out)
    base = _base(job, "new_rank1_fails")
    (failed,) = runs[f"{base}-rank-1"]
    assert failed.exit_code == 1
    assert [row["step_i"] for row in failed.history] == list(range(STEPS))
    (other,) = runs[f"{base}-rank-0"]
    assert other.exit_code == 0
    assert [row["step_i"] for row in other.history] == list(range(STEPS))


def test_a_failing_secondary_fails_the_shared_run(torchrun_offline_1x2: LaunchResult) -> None:
    job = torchrun_offline_1x2
    _rank_failed(job, "shared_secondary_fails", 1)
    recs = records_by_id(job.out)[_base(job, "shared_secondary_fails")]
    by_label = {next(iter(labels_of(rec))): rec for rec in recs}
    assert set(by_label) == {"rank-0", "rank-1"}
    assert by_label["rank-1"].exit_code == 1
    # The primary finished after the secondary reported, with the run's final state: failed.
    assert by_label["rank-0"].exit_code == 1
    rows = rows_by_rank(recs)
    assert {r: len(v) for r, v in rows.items()} == {0: STEPS, 1: STEPS}


def test_a_survivor_stopped_by_the_agent_is_finished_as_preempted(
    elastic_1x2: LaunchResult,
) -> None:
    job = elastic_1x2
    _job_failed(job, "survivor_stopped", 1)
    runs = records_by_id(job.out)
    base = _base(job, "survivor_stopped")
    (failed,) = runs[f"{base}-rank-1"]  # the failing rank: its run failed, its rows kept
    assert failed.exit_code == 1
    assert [row["step_i"] for row in failed.history] == list(range(STEPS))
    (survivor,) = runs[f"{base}-rank-0"]
    # The plugin's SIGTERM handler: marked preempting, finished with 128 + SIGTERM, rows kept.
    assert survivor.preempting
    assert survivor.exit_code == 143
    assert [row["step_i"] for row in survivor.history] == list(range(STEPS))
    (result,) = job.case("survivor_stopped")
    assert result["wall_s"] < 45  # stopped, not waited for its 60 s


def test_an_elastic_restart_resumes_the_same_runs(elastic_1x2: LaunchResult) -> None:
    job = elastic_1x2
    (result,) = job.case("restart")
    assert result["ok"] is True, dump(result)
    base = _base(job, "restart")
    evidence = job.evidence("restart")
    assert sorted((e["rank"], e["restart"]) for e in evidence) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    runs = {rid: recs for rid, recs in records_by_id(job.out).items() if rid.startswith(base)}
    # Two attempts, still one run per rank: the second attempt wrote to the same ids.
    assert set(runs) == {f"{base}-rank-0", f"{base}-rank-1"}
    for rank in (0, 1):
        recs = runs[f"{base}-rank-{rank}"]
        assert len(recs) == 2, [str(r.path) for r in recs]
        assert recs[-1].exit_code == 0
        assert [row["step_i"] for row in recs[-1].history] == list(range(STEPS))
    assert runs[f"{base}-rank-1"][0].exit_code == 1
