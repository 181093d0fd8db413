"""Failing ranks and Elastic restarts in real Elastic jobs (1 node x 2 processes, gloo, offline).

* A rank that raises marks its own run failed; the job fails the way Flyte reports it (the
  Elastic plugin raises ``RuntimeError("PyTorch worker(s) failed: ...")``).
* In shared mode a failed secondary fails the shared run: the primary waits for every secondary's
  exit code (through the job's c10d store) before it finishes, and the failed secondary waits for
  the primary before its process exits (the agent stops the other workers once one fails).
* An Elastic restart (``TORCHELASTIC_RESTART_COUNT`` > 0) resumes the same runs: no new ids.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _distributed_expect import STEPS, dump, labels_of, offline_env, records_by_id, rows_by_rank
from torchrun_harness import Case, LaunchResult, launch

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> LaunchResult:
    root = tmp_path_factory.mktemp("elastic-failures")
    cases = [
        Case(name="auto_rank0_fails", run_mode="auto", rank_scope="global", fail_rank=0),
        # rank 1 fails 3 s after its last step: rank 0 has finished its run by then, before
        # the agent stops it (the next test checks what a stopped survivor records).
        Case(
            name="new_rank1_fails",
            run_mode="new",
            rank_scope="global",
            fail_rank=1,
            fail_delay_s=3.0,
        ),
        Case(name="shared_secondary_fails", run_mode="shared", rank_scope="global", fail_rank=1),
        # rank 0 is still busy when rank 1 fails: the agent stops it with SIGTERM.
        Case(
            name="survivor_stopped",
            run_mode="new",
            rank_scope="global",
            fail_rank=1,
            linger_rank=0,
            linger_s=60.0,
        ),
    ]
    return launch(root, cases, nnodes=1, nproc_per_node=2, run_prefix="f", env=offline_env(root))


def _base(job: LaunchResult, case: str) -> str:
    (result,) = job.case(case)
    return f"{result['run_name']}-a0"


def _job_failed(job: LaunchResult, case: str, rank: int) -> None:
    (result,) = job.case(case)
    assert result["ok"] is False, dump(result)
    assert result["error"].startswith("RuntimeError: PyTorch worker(s) failed"), result["error"]
    assert f"rank {rank}: exitcode=1" in result["error"], result["error"]


def test_a_failing_owner_marks_its_run_failed_and_keeps_its_rows(failures: LaunchResult) -> None:
    _job_failed(failures, "auto_rank0_fails", 0)
    runs = records_by_id(failures.out)
    (rec,) = runs[_base(failures, "auto_rank0_fails")]
    assert rec.exit_code == 1
    assert [row["step_i"] for row in rec.history] == list(range(STEPS))


def test_a_failing_rank_fails_its_own_run_only(failures: LaunchResult) -> None:
    _job_failed(failures, "new_rank1_fails", 1)
    runs = records_by_id(failures.out)
    base = _base(failures, "new_rank1_fails")
    (failed,) = runs[f"{base}-rank-1"]
    assert failed.exit_code == 1
    assert [row["step_i"] for row in failed.history] == list(range(STEPS))
    (other,) = runs[f"{base}-rank-0"]  # rank 0 succeeded before rank 1 failed
    assert other.exit_code == 0
    assert [row["step_i"] for row in other.history] == list(range(STEPS))


def test_a_survivor_stopped_by_the_agent_is_finished_as_preempted(
    failures: LaunchResult,
) -> None:
    _job_failed(failures, "survivor_stopped", 1)
    runs = records_by_id(failures.out)
    base = _base(failures, "survivor_stopped")
    (survivor,) = runs[f"{base}-rank-0"]
    # The plugin's SIGTERM handler: marked preempting, finished with 128 + SIGTERM, rows kept.
    assert survivor.preempting
    assert survivor.exit_code == 143
    assert [row["step_i"] for row in survivor.history] == list(range(STEPS))
    (result,) = failures.case("survivor_stopped")
    assert result["wall_s"] < 45  # stopped, not waited for


def test_a_failing_secondary_fails_the_shared_run(failures: LaunchResult) -> None:
    _job_failed(failures, "shared_secondary_fails", 1)
    runs = records_by_id(failures.out)
    recs = runs[_base(failures, "shared_secondary_fails")]
    by_label = {next(iter(labels_of(rec))): rec for rec in recs}
    assert set(by_label) == {"rank-0", "rank-1"}
    assert by_label["rank-1"].exit_code == 1
    # The primary finished after the secondary reported, with the run's final state: failed.
    assert by_label["rank-0"].exit_code == 1
    rows = rows_by_rank(recs)
    assert {r: len(v) for r, v in rows.items()} == {0: STEPS, 1: STEPS}


def test_an_elastic_restart_resumes_the_same_runs(tmp_path: Path) -> None:
    case = Case(
        name="restart",
        run_mode="new",
        rank_scope="global",
        max_restarts=1,
        fail_first_attempt_rank=1,
    )
    # torch 2.13's elastic agent shares its rendezvous store with the workers and keeps the
    # first attempt's gloo addresses in it, so a restarted gloo group fails to connect (with or
    # without W&B). Each attempt gets a store of its own instead.
    env = {**offline_env(tmp_path), "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    job = launch(tmp_path, [case], nnodes=1, nproc_per_node=2, run_prefix="rs", env=env)
    (result,) = job.case("restart")
    assert result["ok"] is True, dump(result)
    base = f"{result['run_name']}-a0"
    evidence = job.evidence("restart")
    assert sorted((e["rank"], e["restart"]) for e in evidence) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    runs = records_by_id(tmp_path)
    # Two attempts, still one run per rank: the second attempt wrote to the same ids.
    assert set(runs) == {f"{base}-rank-0", f"{base}-rank-1"}
    for rank in (0, 1):
        recs = runs[f"{base}-rank-{rank}"]
        assert len(recs) == 2, [str(r.path) for r in recs]
        assert recs[-1].exit_code == 0
        assert [row["step_i"] for row in recs[-1].history] == list(range(STEPS))
    assert runs[f"{base}-rank-1"][0].exit_code == 1
