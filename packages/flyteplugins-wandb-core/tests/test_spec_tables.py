"""The specification's two tables, row by row, for every job shape nnodes x nproc_per_node.

"Run modes in distributed context": who initialises W&B, how many runs, how many groups.
"Run ID patterns": each run's id and group. Single node (nnodes == 1) uses the "Single-node"
rows: worker scope gives the same ids as global scope.
"""

from __future__ import annotations

import itertools

import pytest

from flyteplugins.wandb_core import Topology, plan, plan_job

BASE = "myrun-a0"
SHAPES = list(itertools.product([1, 2, 3], [1, 2, 4]))
MODES = ["auto", "shared", "new"]
SCOPES = ["global", "worker"]


def expected(mode: str, scope: str, t: Topology) -> tuple[bool, str, str | None]:
    """(initialises, run id, group) for one process, written straight from the spec tables."""
    n = t.num_workers
    multi = n > 1
    w, r, lr = t.worker_index, t.rank, t.local_rank
    if mode == "auto":
        if scope == "global" or not multi:
            return r == 0, BASE, None
        return lr == 0, f"{BASE}-worker-{w}", None
    if mode == "shared":
        if scope == "global" or not multi:
            return True, BASE, None
        return True, f"{BASE}-worker-{w}", None
    if scope == "global" or not multi:
        return True, f"{BASE}-rank-{r}", BASE
    return True, f"{BASE}-worker-{w}-rank-{lr}", f"{BASE}-worker-{w}"


def expected_counts(mode: str, scope: str, n: int, m: int) -> tuple[int, int]:
    """(number of runs, number of groups) from the table's "W&B Runs" and "Grouping" columns."""
    per_worker = scope == "worker" and n > 1
    if mode == "new":
        return n * m, (n if per_worker else 1)
    return (n if per_worker else 1), 0


@pytest.mark.parametrize(("nnodes", "nproc"), SHAPES)
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("mode", MODES)
def test_every_process_matches_the_tables(mode: str, scope: str, nnodes: int, nproc: int) -> None:
    jobs = plan_job(mode, scope, nnodes, nproc, BASE)
    assert len(jobs) == nnodes * nproc
    for topology, p in jobs:
        init, run_id, group = expected(mode, scope, topology)
        assert p.initializes is init, (topology, p)
        assert p.logs is init
        if init:
            assert (p.run_id, p.group) == (run_id, group)
        else:
            assert (p.run_id, p.group, p.role) == (None, None, "silent")
    runs = {p.run_id for _, p in jobs if p.initializes}
    groups = {p.group for _, p in jobs if p.group is not None}
    assert (len(runs), len(groups)) == expected_counts(mode, scope, nnodes, nproc)


@pytest.mark.parametrize(("nnodes", "nproc"), SHAPES)
@pytest.mark.parametrize("scope", SCOPES)
def test_shared_mode_roles(scope: str, nnodes: int, nproc: int) -> None:
    jobs = plan_job("shared", scope, nnodes, nproc, BASE)
    per_worker = scope == "worker" and nnodes > 1
    primaries = [t for t, p in jobs if p.primary]
    assert len(primaries) == (nnodes if per_worker else 1)
    for t, p in jobs:
        assert p.shared
        lead = t.local_rank == 0 if per_worker else t.rank == 0
        assert p.primary is lead and p.finishes is lead
        assert p.role == ("primary" if lead else "secondary")
        want = f"worker-{t.worker_index}-rank-{t.local_rank}" if per_worker else f"rank-{t.rank}"
        assert p.label == want
    labels = [p.label for _, p in jobs]
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize(
    ("mode", "nnodes", "nproc", "rank", "run_id", "group"),
    [
        # One example per row of "Run ID patterns".
        ("auto", 1, 4, 0, BASE, None),
        ("new", 1, 4, 3, f"{BASE}-rank-3", BASE),
        ("auto", 2, 4, 0, BASE, None),
        ("shared", 2, 4, 6, BASE, None),
        ("new", 2, 4, 6, f"{BASE}-rank-6", BASE),
    ],
)
def test_run_id_pattern_rows_global(
    mode: str, nnodes: int, nproc: int, rank: int, run_id: str, group: str | None
) -> None:
    t = Topology.enumerate(nnodes, nproc)[rank]
    p = plan(mode, "global", t, BASE)
    assert (p.run_id, p.group) == (run_id, group)


@pytest.mark.parametrize(
    ("mode", "rank", "run_id", "group"),
    [
        ("auto", 4, f"{BASE}-worker-1", None),
        ("shared", 5, f"{BASE}-worker-1", None),
        ("new", 5, f"{BASE}-worker-1-rank-1", f"{BASE}-worker-1"),
    ],
)
def test_run_id_pattern_rows_worker(mode: str, rank: int, run_id: str, group: str | None) -> None:
    t = Topology.enumerate(2, 4)[rank]
    p = plan(mode, "worker", t, BASE)
    assert (p.run_id, p.group) == (run_id, group)


def test_single_node_worker_scope_equals_global_scope() -> None:
    for mode in MODES:
        for nproc in (1, 2, 4):
            g = plan_job(mode, "global", 1, nproc, BASE)
            w = plan_job(mode, "worker", 1, nproc, BASE)
            assert [(p.run_id, p.group, p.initializes) for _, p in g] == [
                (p.run_id, p.group, p.initializes) for _, p in w
            ]
