"""Flyte's clustered ``TorchRun`` tasks: two real ``torchrun`` launches simulate two nodes.

Each node is one ``torchrun --nnodes=2 --node_rank=N --master_addr=127.0.0.1 --master_port=P``
with the variables Flyte's ``clustered`` launcher exports (``NODE_RANK``, ``NNODES``,
``NPROC_PER_NODE``, ``FLYTE_CLUSTERED_WORKER``); every worker runs the ``@wandb_init``-decorated
clustered task's own ``execute`` under a remote task context, for all six pairs in turn inside
one gloo process group (the session's ``conftest.torchrun_offline_2x2``, which
test_cli_runtime.py checks against the plan CLI too). The worker index comes from the
rendezvous (``GROUP_RANK``); core's fallbacks for launchers that export less (``NODE_RANK``,
``WORLD_SIZE // NNODES``) are rows of its table-driven tests.
"""

from __future__ import annotations

import pytest
from _distributed_expect import PAIRS, case_name, check_pair
from torchrun_harness import LaunchResult

pytest.importorskip(
    "flyte.clustered", reason="Flyte's clustered environments need flyte >= 2.5 (lowest-flyte run)"
)

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize(("mode", "scope"), PAIRS)
def test_clustered_torchrun_matches_the_table(
    torchrun_offline_2x2: LaunchResult, mode: str, scope: str
) -> None:
    check_pair(torchrun_offline_2x2, mode, scope, nnodes=2, nproc=2)
    for ev in torchrun_offline_2x2.evidence(case_name(mode, scope)):
        assert ev["env"]["NODE_RANK"] == ev["env"]["GROUP_RANK"]  # Flyte's and torchrun's agree
