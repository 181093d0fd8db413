"""The one rule for a lone RANK or WORLD_SIZE (plain environment mappings)."""

from __future__ import annotations

import warnings

import pytest

from flyteplugins.wandb._distributed import LAUNCHER_MARKERS, WandbStrayRank, read_topology
from flyteplugins.wandb_core import TopologyError

FULL = {"RANK": "1", "WORLD_SIZE": "2"}


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"RANK": "1"}, "RANK=1 is set but WORLD_SIZE is not"),
        ({"RANK": "0", "LOCAL_RANK": "0"}, "RANK=0 is set but WORLD_SIZE is not"),
        ({"WORLD_SIZE": "8"}, "WORLD_SIZE=8 is set but RANK is not"),
        ({"WORLD_SIZE": " 8 ", "RANK": ""}, "WORLD_SIZE=8 is set but RANK is not"),
    ],
)
def test_lone_variable_without_launcher_warns_and_is_single(
    environ: dict[str, str], named: str
) -> None:
    with pytest.warns(WandbStrayRank, match="is set but") as record:
        assert read_topology(environ) is None
    [message] = [str(w.message) for w in record]
    assert message.startswith(named)
    assert "treats this task as a single process" in message


@pytest.mark.parametrize("marker", LAUNCHER_MARKERS)
@pytest.mark.parametrize("lone", [{"RANK": "1"}, {"WORLD_SIZE": "2"}])
def test_lone_variable_under_a_launcher_is_an_error(marker: str, lone: dict[str, str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning on the way
        with pytest.raises(TopologyError, match="is set but"):
            read_topology({**lone, marker: "job-1"})


@pytest.mark.parametrize(
    "environ",
    [
        {"RANK": "x"},
        {"RANK": "2", "WORLD_SIZE": "2"},
        {"RANK": "0", "WORLD_SIZE": "4", "NNODES": "3"},
    ],
)
def test_other_errors_never_become_warnings(environ: dict[str, str]) -> None:
    with pytest.raises(TopologyError):
        read_topology(environ)


def test_complete_and_empty_environments_are_read_as_core_reads_them() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_topology({}) is None
        t = read_topology(FULL)
        assert t is not None and (t.rank, t.world_size) == (1, 2)
        assert read_topology({**FULL, "TORCHELASTIC_RUN_ID": ""}) == t
