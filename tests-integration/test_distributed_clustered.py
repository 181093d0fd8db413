"""Flyte's clustered ``TorchRun`` tasks: two real ``torchrun`` launches simulate two nodes.

Each node is one ``torchrun --nnodes=2 --node_rank=N --master_addr=127.0.0.1 --master_port=P``
with the variables Flyte's ``clustered`` launcher exports (``NODE_RANK``, ``NNODES``,
``NPROC_PER_NODE``, ``FLYTE_CLUSTERED_WORKER``); every worker runs the ``@wandb_init``-decorated
clustered task's own ``execute`` under a remote task context, for all six pairs in turn inside
one gloo process group. ``GROUP_RANK`` and ``LOCAL_WORLD_SIZE`` are removed from the workers'
environment first, so the worker index and the processes per node come from core's fallbacks
(``NODE_RANK``; ``WORLD_SIZE // NNODES``), as with launchers that export only those.
"""

from __future__ import annotations

import pytest
from _distributed_expect import LAUNCHER_LEFTOVERS, PAIRS, STEPS, case_name, offline_env
from test_distributed_elastic import check_pair
from torchrun_harness import Case, LaunchResult, launch_torchrun

pytest.importorskip(
    "flyte.clustered", reason="Flyte's clustered environments need flyte >= 2.5 (lowest-flyte run)"
)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> LaunchResult:
    root = tmp_path_factory.mktemp("clustered-2x2")
    # PAIRS starts with the auto pairs: their silent ranks have not imported wandb for an earlier
    # case of the same worker process, so "never imported" is still checkable for them.
    assert [m for m, _ in PAIRS[:2]] == ["auto", "auto"]
    cases = [Case(name=case_name(m, s), run_mode=m, rank_scope=s, steps=STEPS) for m, s in PAIRS]
    return launch_torchrun(
        root,
        cases,
        nnodes=2,
        nproc_per_node=2,
        run_prefix="cl",
        env={**offline_env(root), **LAUNCHER_LEFTOVERS},
        drop_env=("GROUP_RANK", "LOCAL_WORLD_SIZE"),
    )


@pytest.mark.parametrize(("mode", "scope"), PAIRS)
def test_clustered_torchrun_matches_the_table(
    clustered: LaunchResult, mode: str, scope: str
) -> None:
    check_pair(clustered, mode, scope, nnodes=2, nproc=2, elastic=False)
    for ev in clustered.evidence(case_name(mode, scope)):
        assert ev["env"]["GROUP_RANK"] is None  # the fallback was exercised
