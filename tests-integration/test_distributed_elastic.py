"""Every run_mode x rank_scope pair in real PyTorch Elastic jobs, checked against the spec's tables.

Each job is real: launcher processes call the ``Elastic`` task's own ``execute`` under a remote
Flyte task context, so ``flyteplugins-pytorch`` starts the workers with ``elastic_launch`` and
restores the Flyte context in each (see ``torchrun_harness.py``); the workers join a gloo process
group and ``all_reduce`` every step; the real wandb client writes offline runs. One launch per
topology runs the six pairs one after the other, so the job start-up cost is paid per launcher,
not per test; the 2x2 job is the session's (``conftest.elastic_pairs_2x2``), which
``test_cli_runtime.py`` checks against the plan CLI.

What is asserted comes from the files W&B wrote (``.wandb`` records) and from each worker's
own evidence file (its rank, its run, whether ``wandb`` was ever imported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _distributed_expect import (
    PAIRS,
    PROJECT,
    STEPS,
    Expect,
    case_name,
    dump,
    expected,
    labels_of,
    launch_pairs,
    records_by_id,
    rows_by_rank,
    wrote_metadata,
)
from torchrun_harness import LaunchResult

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def single_node(tmp_path_factory: pytest.TempPathFactory) -> LaunchResult:
    return launch_pairs(tmp_path_factory.mktemp("elastic-1x2"), 1, "one")


@pytest.fixture
def two_nodes(elastic_pairs_2x2: LaunchResult) -> LaunchResult:
    """The session's 2x2 job of every pair (conftest.py; test_cli_runtime.py checks it too)."""
    return elastic_pairs_2x2


def check_pair(
    job: LaunchResult, mode: str, scope: str, nnodes: int, nproc: int, *, elastic: bool = True
) -> None:
    """Check one pair's job against the tables.

    ``elastic``: launched through the Elastic plugin (one result per launcher, the rendezvous id
    is the Flyte run name); otherwise by plain ``torchrun`` workers (one result per rank).
    """
    name = case_name(mode, scope)
    results = job.case(name)
    logs = "\n".join(Path(p).read_text(errors="replace")[-3000:] for p in job.logs)
    assert job.returncodes == [0] * nnodes, logs
    assert len(results) == (nnodes if elastic else nnodes * nproc), logs
    assert all(r["ok"] for r in results), dump(results)
    run_name = results[0]["run_name"]
    base = f"{run_name}-a0"
    want = expected(mode, scope, base, nnodes, nproc)

    # Every worker: the run it got, its distributed info, and wandb only where it logs.
    evidence = {e["rank"]: e for e in job.evidence(name)}
    assert sorted(evidence) == list(range(nnodes * nproc)), dump(evidence)
    for rank, ev in evidence.items():
        exp: Expect = want[rank]
        assert ev["has_run"] == (exp.run_id is not None), (rank, dump(ev))
        assert ev["run_id"] == exp.run_id, (rank, dump(ev))
        assert ev["wandb_imported"] == (exp.run_id is not None), (rank, dump(ev))
        info = ev["info"]
        assert info["rank"] == rank
        assert info["world_size"] == nnodes * nproc
        assert info["local_world_size"] == nproc
        assert info["num_workers"] == nnodes
        node = ev["env"]["GROUP_RANK"] or ev["env"]["NODE_RANK"]
        assert info["worker_index"] == rank // nproc == int(node)
        assert info["local_rank"] == rank % nproc
        if elastic:
            assert ev["env"]["TORCHELASTIC_RUN_ID"] == run_name
        assert ev["run_name"] == run_name
        # Worker hygiene: the launcher's service token and run id did not reach the worker.
        token = ev["env"]["WANDB_SERVICE"]
        assert token is None or token.startswith(f"3-{ev['pid']}-"), dump(ev)
        assert ev["env"]["WANDB_RUN_ID"] is None, dump(ev)
        assert ev["allreduce"] == pytest.approx(
            sum(r + 1 + STEPS - 1 for r in range(nnodes * nproc))
        )

    # What W&B recorded for this case: exactly the runs of the table, nothing else.
    recorded = {
        rid: recs
        for rid, recs in records_by_id(job.out).items()
        if rid == base or rid.startswith(base + "-")
    }
    want_ids = {e.run_id for e in want.values() if e.run_id is not None}
    assert set(recorded) == want_ids, dump(sorted(recorded))
    for run_id in want_ids:
        writers = sorted(r for r, e in want.items() if e.run_id == run_id)
        recs = recorded[run_id]
        # One offline file per writer; shared mode offline: one per rank, same id.
        assert len(recs) == len(writers), (run_id, [str(r.path) for r in recs])
        groups = {want[r].group for r in writers}
        assert {rec.group for rec in recs} == groups, (run_id, [rec.group for rec in recs])
        assert all(rec.project == PROJECT for rec in recs)
        assert all(rec.exit_code == 0 for rec in recs), [rec.exit_code for rec in recs]
        rows = rows_by_rank(recs)
        assert sorted(rows) == writers, (run_id, sorted(rows))
        for rank in writers:
            assert [row["step_i"] for row in rows[rank]] == list(range(STEPS)), rows[rank]
        if mode == "shared":
            by_label = {}
            for rec in recs:
                (label,) = labels_of(rec)
                by_label[label] = rec
            assert set(by_label) == {want[r].label for r in writers}
            primaries = [lab for lab, rec in by_label.items() if wrote_metadata(rec)]
            assert primaries == [want[r].label for r in writers if want[r].primary]
        else:
            assert all(labels_of(rec) == set() for rec in recs)


@pytest.mark.parametrize(("mode", "scope"), PAIRS)
def test_single_node_matches_the_table(single_node: LaunchResult, mode: str, scope: str) -> None:
    check_pair(single_node, mode, scope, nnodes=1, nproc=2)


@pytest.mark.parametrize(("mode", "scope"), PAIRS)
def test_two_nodes_match_the_table(two_nodes: LaunchResult, mode: str, scope: str) -> None:
    check_pair(two_nodes, mode, scope, nnodes=2, nproc=2)


def test_one_launch_per_node_ran_all_pairs(two_nodes: LaunchResult) -> None:
    """Sanity of the harness: two launcher processes, one result per pair and node."""
    assert len(two_nodes.results) == 2 * len(PAIRS)
    nodes: dict[str, Any] = {}
    for r in two_nodes.results:
        nodes.setdefault(r["case"], set()).add(r["node"])
    assert all(v == {0, 1} for v in nodes.values())
