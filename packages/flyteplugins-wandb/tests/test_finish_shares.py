"""How a shared run's writers split one finish budget (``_shared_finish.FinishShares``), pure parts.

The primary waits for the secondaries within the budget and finishes in what is left, so the
whole job ends within ``finish_timeout`` of its code returning. The handshake against a real
store and the real job with a dead server: tests-integration/test_distributed_shared_bounded.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb import _shared_finish as d
from flyteplugins.wandb._resilience import DEFAULT_FINISH_TIMEOUT, finish_budget
from flyteplugins.wandb_core import Topology, plan

BUDGET_S = 8.0


@given(st.floats(min_value=0.01, max_value=1e6, allow_nan=False))
def test_the_shares_add_up_to_the_budget(budget: float) -> None:
    shares = d.split_finish(budget)
    assert shares is not None
    assert shares.wait + shares.primary == pytest.approx(budget)
    assert 0 < shares.secondary < shares.wait  # a margin to report back
    assert shares.wait - shares.secondary <= d.REPORT_MARGIN_S + 1e-9
    assert shares.primary > 0  # 0 would mean "no limit" to the client


def test_no_limit_is_not_split() -> None:
    assert d.split_finish(0) is None


@pytest.mark.parametrize(
    ("plugin", "user", "env", "want"),
    [
        (None, None, {}, DEFAULT_FINISH_TIMEOUT),
        (5, {"finish_timeout": 60}, {"WANDB_FINISH_TIMEOUT": "70"}, 5.0),  # the plugin's wins
        (None, {"finish_timeout": 60}, {"WANDB_FINISH_TIMEOUT": "70"}, 60.0),
        (None, None, {"WANDB_FINISH_TIMEOUT": "70"}, 70.0),
        (0, None, {}, 0.0),
    ],
)
def test_the_budget_follows_the_finish_timeout_rule(
    plugin: float | None, user: Any, env: dict[str, str], want: float
) -> None:
    assert finish_budget(plugin, user, env) == want


def test_a_bad_finish_timeout_variable_is_named() -> None:
    with pytest.raises(ValueError, match="WANDB_FINISH_TIMEOUT='soon'"):
        finish_budget(None, None, {"WANDB_FINISH_TIMEOUT": "soon"})


def test_each_writer_starts_with_its_share() -> None:
    """The share is the writer's own ``finish_timeout`` (the client reads it when the run
    starts); runs no one waits for keep the whole budget."""
    primary = Topology(rank=0, world_size=2, local_rank=0, local_world_size=2, worker_index=0)
    secondary = Topology(rank=1, world_size=2, local_rank=1, local_world_size=2, worker_index=0)
    shares = d.split_finish(BUDGET_S)
    assert shares is not None
    for topo, want in ((primary, shares.primary), (secondary, shares.secondary)):
        p = plan("shared", "global", topo, "b")
        sync = d.SharedFinish.for_plan(p, topo, "b", {}, plugin_timeout=BUDGET_S)
        assert sync is not None and sync.shares == shares
        assert sync.finish_timeout == pytest.approx(want)
    # The user's own settings give the budget when the plugin's setting is absent.
    p = plan("shared", "global", secondary, "b")
    sync = d.SharedFinish.for_plan(p, secondary, "b", {}, user_settings={"finish_timeout": 20})
    split = d.split_finish(20)
    assert split is not None and sync is not None
    assert sync.finish_timeout == pytest.approx(split.secondary)
    # Joining a parent's run: the parent is the primary elsewhere; nobody waits, nothing split.
    joined = plan("shared", "global", secondary, "b", parent_id="parent")
    jsync = d.SharedFinish.for_plan(
        joined, secondary, "b", {}, plugin_timeout=BUDGET_S, parent_id="parent"
    )
    assert jsync is not None and jsync.shares is None and jsync.finish_timeout is None
