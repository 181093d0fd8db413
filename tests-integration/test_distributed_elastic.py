"""Every run_mode x rank_scope pair in real distributed jobs, checked against the spec's tables.

* One node x 2 processes: the session's offline ``torchrun`` job (``conftest.torchrun_offline_1x2``:
  Flyte's clustered ``TorchRun`` task, one process per rank running every pair in turn, each a
  decorated task's own ``execute`` under a remote Flyte task context). Two nodes: the same job on
  two ``torchrun`` launches, checked in test_distributed_clustered.py.
* The Elastic remote path, once (``conftest.elastic_1x2``): a launcher process calls an
  ``Elastic`` task's own ``execute`` under a remote Flyte task context, so
  ``flyteplugins-pytorch`` starts the workers with ``elastic_launch`` and restores the Flyte
  context in each worker (its run name is ``TORCHELASTIC_RUN_ID``); the launcher carries a
  wandb-core token and a run id of its own, which must not reach the workers.

Every job is real: the workers join a gloo process group and ``all_reduce`` every step; the real
wandb client writes offline runs. What is asserted comes from the files W&B wrote (``.wandb``
records) and from each worker's own evidence file (its rank, its run, whether ``wandb`` was ever
imported).
"""

from __future__ import annotations

import pytest
from _distributed_expect import ELASTIC_PAIR, PAIRS, case_name, check_pair
from torchrun_harness import LaunchResult

pytestmark = pytest.mark.timeout(900)


@pytest.mark.parametrize(("mode", "scope"), PAIRS)
def test_single_node_matches_the_table(
    torchrun_offline_1x2: LaunchResult, mode: str, scope: str
) -> None:
    check_pair(torchrun_offline_1x2, mode, scope, nnodes=1, nproc=2)


def test_the_elastic_remote_path_matches_the_table(elastic_1x2: LaunchResult) -> None:
    """Context restored in every worker, ``TORCHELASTIC_RUN_ID`` = the Flyte run name, the
    launcher's leftovers removed, the shared run's writers meeting through the agent's store."""
    check_pair(elastic_1x2, *ELASTIC_PAIR, nnodes=1, nproc=2, elastic=True)
    (result,) = elastic_1x2.case(case_name(*ELASTIC_PAIR))
    assert result["node"] == 0  # one launcher, one execute for the case
