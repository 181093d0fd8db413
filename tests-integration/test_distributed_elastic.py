"""Every run_mode x rank_scope pair in real distributed jobs, checked against the spec's tables.

* One node x 2 processes: the session's offline ``torchrun`` job (``conftest.torchrun_offline_1x2``:
  Flyte's clustered ``TorchRun`` task, one process per rank running every pair in turn, each a
  decorated task's own ``execute`` under a remote Flyte task context). Two nodes: the same job on
  two ``torchrun`` launches, checked in test_distributed_clustered.py.
* The Elastic remote path, once: two launcher processes call an ``Elastic`` task's own
  ``execute`` under a remote Flyte task context, so ``flyteplugins-pytorch`` starts the workers
  with ``elastic_launch`` after a c10d rendezvous of the two launchers, and restores the Flyte
  context in each worker (its run name is ``TORCHELASTIC_RUN_ID``); the launchers carry a
  wandb-core token and a run id of their own, which must not reach the workers.

Every job is real: the workers join a gloo process group and ``all_reduce`` every step; the real
wandb client writes offline runs. What is asserted comes from the files W&B wrote (``.wandb``
records) and from each worker's own evidence file (its rank, its run, whether ``wandb`` was ever
imported).
"""

from __future__ import annotations

from typing import Any

import pytest
from _distributed_expect import (
    LAUNCHER_LEFTOVERS,
    PAIRS,
    STEPS,
    case_name,
    check_pair,
    offline_env,
)
from torchrun_harness import Case, LaunchResult, launch

pytestmark = pytest.mark.timeout(900)

# The Elastic job's one case: the richest pair on two nodes (a shared run per worker, two
# primaries, every rank labelled).
ELASTIC_PAIR = ("shared", "worker")


@pytest.fixture(scope="module")
def elastic_2x2(tmp_path_factory: pytest.TempPathFactory) -> LaunchResult:
    root = tmp_path_factory.mktemp("elastic-2x2")
    mode, scope = ELASTIC_PAIR
    case = Case(name=case_name(mode, scope), run_mode=mode, rank_scope=scope, steps=STEPS)
    return launch(
        root, [case], nnodes=2, nproc_per_node=2, run_prefix="el",
        env=offline_env(root), launcher_env=LAUNCHER_LEFTOVERS,
    )  # fmt: skip


@pytest.mark.parametrize(("mode", "scope"), PAIRS)
def test_single_node_matches_the_table(
    torchrun_offline_1x2: LaunchResult, mode: str, scope: str
) -> None:
    check_pair(torchrun_offline_1x2, mode, scope, nnodes=1, nproc=2)


def test_the_elastic_remote_path_matches_the_table(elastic_2x2: LaunchResult) -> None:
    """Context restored in every worker, ``TORCHELASTIC_RUN_ID`` = the Flyte run name, the
    rendezvous of two launchers giving the worker index, the launchers' leftovers removed."""
    check_pair(elastic_2x2, *ELASTIC_PAIR, nnodes=2, nproc=2, elastic=True)


def test_one_launch_per_node_ran_the_case(elastic_2x2: LaunchResult) -> None:
    """Sanity of the harness: two launcher processes, one result each."""
    nodes: dict[str, Any] = {}
    for r in elastic_2x2.results:
        nodes.setdefault(r["case"], set()).add(r["node"])
    assert nodes == {case_name(*ELASTIC_PAIR): {0, 1}}
