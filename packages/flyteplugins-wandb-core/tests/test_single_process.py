"""Parent/child semantics of a single (non-distributed) process, user ids and parents."""

from __future__ import annotations

import pytest

from flyteplugins.wandb_core import Topology, plan


@pytest.mark.parametrize(
    ("mode", "parent", "in_process", "role", "run_id"),
    [
        ("auto", None, False, "owner", "r-a1"),
        ("auto", "r-a0", True, "reuse", "r-a0"),
        ("auto", "r-a0", False, "secondary", "r-a0"),
        ("shared", "r-a0", True, "reuse", "r-a0"),
        ("shared", "r-a0", False, "secondary", "r-a0"),
        ("shared", None, False, "owner", "r-a1"),  # shared with no parent behaves as auto
        ("new", None, False, "owner", "r-a1"),
        ("new", "r-a0", True, "owner", "r-a1"),
        ("new", "r-a0", False, "owner", "r-a1"),
    ],
)
def test_parent_child(
    mode: str, parent: str | None, in_process: bool, role: str, run_id: str
) -> None:
    p = plan(
        mode, "global", None, "r-a1", parent_id=parent, parent_in_process=in_process, label="a1"
    )
    assert p.role == role
    assert p.run_id == run_id
    assert p.logs
    assert p.group is None
    if role == "secondary":
        assert p.shared and not p.primary and not p.finishes and p.label == "a1"
        assert p.joins_existing
    if role == "reuse":
        assert not p.initializes and not p.finishes
    if role == "owner":
        assert p.finishes and not p.shared


def test_user_id_replaces_base_and_wins_over_parent() -> None:
    p = plan("auto", "global", None, "r-a1", parent_id="r-a0", user_id="mine")
    assert (p.role, p.run_id) == ("owner", "mine")
    t = Topology.enumerate(2, 2)[3]
    p = plan("new", "worker", t, "r-a1", user_id="mine")
    assert (p.run_id, p.group) == ("mine-worker-1-rank-1", "mine-worker-1")


def test_distributed_auto_child_joins_the_parent_run_from_rank_zero() -> None:
    jobs = [plan("auto", "global", t, "r-a1", parent_id="r-a0") for t in Topology.enumerate(2, 2)]
    assert [p.role for p in jobs] == ["secondary", "silent", "silent", "silent"]
    assert jobs[0].run_id == "r-a0" and jobs[0].label == "rank-0"


def test_distributed_shared_child_of_parent_has_no_primary() -> None:
    jobs = [plan("shared", "global", t, "b", parent_id="r-a0") for t in Topology.enumerate(1, 3)]
    assert all(p.run_id == "r-a0" and p.role == "secondary" for p in jobs)


@pytest.mark.parametrize("bad", ["bad/id", "has space", "a:b", "", "quote'"])
def test_user_id_with_rejected_characters(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid W&B run id"):
        plan("auto", "global", None, "b", user_id=bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"run_mode": "always"}, r"invalid run_mode 'always' \(str\); expected one of 'auto'"),
        ({"run_mode": 1}, r"invalid run_mode 1 \(int\)"),
        ({"rank_scope": "node"}, r"invalid rank_scope 'node' \(str\); expected one of 'global'"),
        ({"rank_scope": None}, r"invalid rank_scope None"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"run_mode": "auto", "rank_scope": "global", **kwargs}
    with pytest.raises(ValueError, match=message):
        plan(args["run_mode"], args["rank_scope"], None, "b")  # type: ignore[arg-type]
