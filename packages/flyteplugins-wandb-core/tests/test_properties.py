"""Property-based tests of the plan over arbitrary job shapes and names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb_core import (
    MAX_RUN_ID_LENGTH,
    is_valid_run_id,
    link_targets,
    make_base,
    plan_job,
)

modes = st.sampled_from(["auto", "new", "shared"])
scopes = st.sampled_from(["global", "worker"])
nodes = st.integers(min_value=1, max_value=6)
procs = st.integers(min_value=1, max_value=8)
names = st.text(min_size=1, max_size=300)


@given(modes, scopes, nodes, procs, names, names)
def test_run_counts_ids_and_loggers(
    mode: str, scope: str, n: int, m: int, run_name: str, action: str
) -> None:
    base = make_base(run_name, action)
    jobs = plan_job(mode, scope, n, m, base)
    per_worker = scope == "worker" and n > 1
    loggers = [(t, p) for t, p in jobs if p.initializes]
    ids = [p.run_id for _, p in loggers]
    assert all(p.run_id is not None and is_valid_run_id(p.run_id) for _, p in loggers)
    assert all(len(i or "") <= MAX_RUN_ID_LENGTH for i in ids)
    if mode == "new":
        assert len(ids) == len(set(ids)) == n * m
        assert len({p.group for _, p in loggers}) == (n if per_worker else 1)
    else:
        assert len(set(ids)) == (n if per_worker else 1)
    if mode == "auto":
        want = {
            t.rank for t in (t for t, _ in jobs) if (t.local_rank if per_worker else t.rank) == 0
        }
    else:
        want = {t.rank for t, _ in jobs}
    assert {t.rank for t, _ in loggers} == want
    # exactly one finisher per run
    finishers: dict[str | None, int] = {}
    for _, p in loggers:
        finishers[p.run_id] = finishers.get(p.run_id, 0) + int(p.finishes)
    assert set(finishers.values()) == {1}


@given(modes, scopes, nodes, procs, names)
def test_link_targets_equal_planned_runs_or_groups(
    mode: str, scope: str, n: int, m: int, run_name: str
) -> None:
    base = make_base(run_name, "a0")
    jobs = plan_job(mode, scope, n, m, base)
    key = "group" if mode == "new" else "run_id"
    planned = {getattr(p, key) for _, p in jobs if p.logs}
    targets = link_targets(mode, scope, base, nnodes=n, nproc_per_node=m)
    assert {t.id for t in targets} == planned
    assert len(targets) == len(planned)


@given(names, names)
def test_base_is_deterministic_and_valid(run_name: str, action: str) -> None:
    base = make_base(run_name, action)
    assert base == make_base(run_name, action)
    if "{{" not in base:
        assert is_valid_run_id(base)
