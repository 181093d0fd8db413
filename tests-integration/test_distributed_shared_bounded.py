"""A shared run's finish is bounded for the whole job, not per rank, when the server dies.

Before, the primary waited for the secondaries' own ``finish_timeout`` and then spent its own:
twice the promised time after the code returned, while its warning named the single limit. The
writers now split one budget (``_shared_finish.FinishShares``, whose pure parts are tested in
packages/flyteplugins-wandb/tests/test_finish_shares.py): the job ends within
``finish_timeout`` of its code returning, and the primary's warning states the time spent.

The job is the last case of the session's real 2-rank ``torchrun`` job (``conftest.online_1x2``)
writing one shared run to a test server of its own, which is killed (SIGKILL) once both ranks
have logged their steps; the ranks then log a few more rows and return, and their processes
exit (the case is their last). Times come from the workers' own records: when their code
returned and when their processes exited.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _distributed_expect import BOUNDED_CASE, BOUNDED_S, OnlineJob, dump
from torchrun_harness import fake_agent_store

from flyteplugins.wandb import _shared_finish as d
from flyteplugins.wandb._records import read_run

pytestmark = [pytest.mark.online, pytest.mark.timeout(600)]

BUDGET_S = BOUNDED_S
# Between the primary's finish and the workers' exit: the worker leaves its process group and
# its interpreter shuts down.
SLACK_S = 2.5
SPENT = re.compile(r"W&B run (\S+) \(writer (\S+)\) on \S+ is incomplete \(([\d.]+) s spent")


# -- the handshake against a real store ----------------------------------------------------------


@pytest.fixture
def agent_store(monkeypatch: pytest.MonkeyPatch) -> Any:
    return fake_agent_store(monkeypatch)


def _pair(budget: float) -> tuple[d.SharedFinish, d.SharedFinish]:
    shares = d.split_finish(budget)
    common = {"secondaries": (1,), "has_primary": True, "timeout_s": 20.0, "shares": shares}
    ns = f"ns-{time.monotonic_ns()}"
    primary = d.SharedFinish("r", 0, True, namespace=ns, **common)  # type: ignore[arg-type]
    secondary = d.SharedFinish("r", 1, False, namespace=ns, **common)  # type: ignore[arg-type]
    return primary, secondary


def _secondary(sync: d.SharedFinish, code: int, upload_s: float) -> threading.Thread:
    def body() -> None:
        sync.before_finish(code)
        time.sleep(upload_s)  # its run.finish()
        sync.after_finish(code)

    t = threading.Thread(target=body)
    t.start()
    return t


@pytest.mark.parametrize(
    ("code", "upload_s", "want", "waits_at_most"),
    [
        (0, 0.2, 0, 1.5),  # uploads in time: the primary waits for it, then finishes
        (1, 0.2, 1, 1.5),  # a failed secondary fails the run
        (0, 6.0, 0, 3.0),  # still uploading when its share ran out: not a failure; no waiting on
    ],
)
def test_the_primary_waits_within_the_budget(
    agent_store: Any, code: int, upload_s: float, want: int, waits_at_most: float
) -> None:
    primary, secondary = _pair(4.0)
    thread = _secondary(secondary, code, upload_s)
    time.sleep(0.2)  # the secondary's code returned first
    started = time.monotonic()
    assert primary.before_finish(0) == want
    assert time.monotonic() - started <= waits_at_most
    report = primary.finish_report()
    assert report["limit"] == 4.0 and report["share"] is None
    assert report["since"] is not None and report["since"] >= started
    primary.after_finish(want)
    thread.join()
    assert secondary.finish_report()["share"] == pytest.approx(secondary.shares.secondary)  # type: ignore[union-attr]


def test_a_secondary_stuck_in_its_code_fails_the_run(agent_store: Any) -> None:
    primary, _ = _pair(4.0)
    primary.timeout_s = 1.0  # FINISH_TIMEOUT_ENV: how long the secondaries' code may run on
    assert primary.before_finish(0) == 1


# -- the real job ------------------------------------------------------------------------------


def test_a_shared_job_with_a_dead_server_ends_within_finish_timeout(online_1x2: OnlineJob) -> None:
    """The last case of the session's online 1x2 ``torchrun`` job (``conftest.online_1x2``):
    its server is killed once both ranks have logged their steps."""
    job, case = online_1x2.job, BOUNDED_CASE
    logs = "\n".join(Path(p).read_text(errors="replace") for p in job.logs)
    assert (job.out / case.name / "go").exists(), logs[-4000:]
    results = job.case(case.name)
    assert len(results) == 2 and all(r["ok"] for r in results), dump(results)
    evidence = job.evidence(case.name)
    assert sorted(e["rank"] for e in evidence) == [0, 1] and all(e["has_run"] for e in evidence)
    returned = max(e["returned_at"] for e in evidence)
    exits = job.exits(case.name)
    assert len(exits) == 2, logs[-4000:]
    # The workers' own record: the last one exited within the budget of the code's end.
    finished_after = max(exits) - returned
    assert finished_after <= BUDGET_S + SLACK_S, (finished_after, logs[-4000:])
    # torchrun saw the job end after that (its agent polls, reaps, returns): before, with the
    # primary spending its own budget after the secondaries', this exceeded twice it.
    assert job.ended_at - returned < 2 * BUDGET_S, (job.ended_at, returned)

    # Both writers warn; the primary's warning states the whole job's time, within the budget.
    spent = {m.group(2): float(m.group(3)) for m in SPENT.finditer(logs)}
    assert set(spent) == {"rank-0", "rank-1"}, logs[-4000:]
    assert spent["rank-0"] <= BUDGET_S + 0.5, spent
    assert abs(spent["rank-0"] - finished_after) <= SLACK_S, (spent, finished_after)
    assert spent["rank-1"] < spent["rank-0"], spent
    assert f"finish_timeout={BUDGET_S:g} s" in logs
    assert "this writer's share of finish_timeout" in logs

    # The secondary reported in time: the primary recorded the run as finished, not failed.
    run_id = f"{results[0]['run_name']}-a0"
    primary_files = list(online_1x2.home.glob(f"wandb/run-*-{run_id}*/run-{run_id}.wandb"))
    exit_codes = sorted(read_run(p).exit_code for p in primary_files)
    assert exit_codes == [0, 0], (primary_files, exit_codes)
