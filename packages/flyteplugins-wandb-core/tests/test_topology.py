"""Reading the distributed topology from an environment mapping."""

from __future__ import annotations

import pytest

from flyteplugins.wandb_core import Topology, TopologyError


def env(**kw: object) -> dict[str, str]:
    return {k: str(v) for k, v in kw.items()}


def test_not_distributed() -> None:
    assert Topology.from_env({}) is None
    assert Topology.from_env({"PATH": "/bin", "LOCAL_RANK": "0"}) is None


def test_full_torchrun_environment() -> None:
    t = Topology.from_env(
        env(
            RANK=5,
            WORLD_SIZE=8,
            LOCAL_RANK=1,
            LOCAL_WORLD_SIZE=4,
            GROUP_RANK=1,
            TORCHELASTIC_RESTART_COUNT=2,
        )
    )
    assert t is not None
    assert t.info() == {
        "rank": 5,
        "local_rank": 1,
        "world_size": 8,
        "local_world_size": 4,
        "worker_index": 1,
        "num_workers": 2,
    }
    assert t.restart_count == 2 and not t.single_node


@pytest.mark.parametrize(
    ("environ", "local_world", "local_rank", "worker"),
    [
        # GROUP_RANK missing: RANK // LOCAL_WORLD_SIZE
        (env(RANK=5, WORLD_SIZE=8, LOCAL_RANK=1, LOCAL_WORLD_SIZE=4), 4, 1, 1),
        # Flyte clustered TorchRun style names
        (env(RANK=3, WORLD_SIZE=4, NODE_RANK=1, NPROC_PER_NODE=2), 2, 1, 1),
        (env(RANK=3, WORLD_SIZE=6, NNODES=3), 2, 1, 1),
        # nothing about nodes: assume one node
        (env(RANK=3, WORLD_SIZE=4), 4, 3, 0),
    ],
)
def test_fallbacks(environ: dict[str, str], local_world: int, local_rank: int, worker: int) -> None:
    t = Topology.from_env(environ)
    assert t is not None
    assert (t.local_world_size, t.local_rank, t.worker_index) == (local_world, local_rank, worker)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (env(RANK="x", WORLD_SIZE=2), r"RANK='x' is not an integer"),
        (env(RANK=-1, WORLD_SIZE=2), r"RANK='-1' must be >= 0"),
        (env(RANK=0, WORLD_SIZE=0), r"WORLD_SIZE='0' must be >= 1"),
        (env(RANK=2, WORLD_SIZE=2), r"RANK=2 must be in \[0, WORLD_SIZE=2\)"),
        (env(RANK=0, WORLD_SIZE=4, LOCAL_RANK=2, LOCAL_WORLD_SIZE=2), r"LOCAL_RANK=2 must be in"),
        (env(RANK=0, WORLD_SIZE=5, LOCAL_WORLD_SIZE=2), r"WORLD_SIZE=5 is not a multiple"),
        (env(RANK=0, WORLD_SIZE=4, LOCAL_WORLD_SIZE=2, GROUP_RANK=2), r"GROUP_RANK=2 must be in"),
        (env(RANK=1), r"RANK=1 is set but WORLD_SIZE is not"),
        (env(WORLD_SIZE=2), r"WORLD_SIZE=2 is set but RANK is not"),
        (env(RANK=0, WORLD_SIZE=2, LOCAL_WORLD_SIZE="two"), r"LOCAL_WORLD_SIZE='two' is not"),
        (env(RANK=0, WORLD_SIZE=2, TORCHELASTIC_RESTART_COUNT="-3"), r"RESTART_COUNT='-3'"),
        (env(RANK=0, WORLD_SIZE=4, NNODES=3), r"WORLD_SIZE=4 is not a multiple of NNODES=3"),
    ],
)
def test_malformed_values_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        Topology.from_env(environ)


def test_topology_error_is_a_value_error() -> None:
    assert issubclass(TopologyError, ValueError)


@pytest.mark.parametrize(
    ("environ", "present", "missing"),
    [
        (env(RANK=1), "RANK", "WORLD_SIZE"),
        (env(RANK=0, LOCAL_RANK=0, GROUP_RANK=0), "RANK", "WORLD_SIZE"),
        (env(WORLD_SIZE=2), "WORLD_SIZE", "RANK"),
        (env(WORLD_SIZE=2, RANK=" "), "WORLD_SIZE", "RANK"),
    ],
)
def test_a_lone_rank_or_world_size_is_named(
    environ: dict[str, str], present: str, missing: str
) -> None:
    """What a caller needs to tell a stray variable from a broken distributed job."""
    with pytest.raises(TopologyError) as caught:
        Topology.from_env(environ)
    assert (caught.value.present, caught.value.missing) == (present, missing)


@pytest.mark.parametrize(
    "environ",
    [
        env(RANK="x"),  # malformed, even alone: never a stray variable
        env(RANK=2, WORLD_SIZE=2),
        env(RANK=0, WORLD_SIZE=5, LOCAL_WORLD_SIZE=2),
    ],
)
def test_other_errors_name_no_lone_variable(environ: dict[str, str]) -> None:
    with pytest.raises(TopologyError) as caught:
        Topology.from_env(environ)
    assert (caught.value.present, caught.value.missing) == (None, None)


def test_topology_error_survives_pickling() -> None:
    """Errors cross process boundaries (Elastic workers report them to the launcher)."""
    import pickle

    with pytest.raises(TopologyError) as caught:
        Topology.from_env(env(RANK=1))
    again = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(again, TopologyError) and str(again) == str(caught.value)
    assert (again.present, again.missing) == ("RANK", "WORLD_SIZE")


def test_enumerate_rejects_empty_jobs() -> None:
    with pytest.raises(TopologyError, match="nnodes=0"):
        Topology.enumerate(0, 2)
