"""A lone RANK (or WORLD_SIZE) in the environment of a task that is not distributed.

Real local Flyte runs with the real wandb client offline: the task runs as a single process and a
warning names the variable. A process that a distributed launcher started (torchrun sets
``TORCHELASTIC_RUN_ID``, Flyte's clustered launcher ``FLYTE_CLUSTERED_WORKER``) still fails: there
the lone variable means a broken job: the launcher's own marker variable is what the plugin reads,
so setting it here proves the rule without starting a ``torchrun`` (core's table-driven tests
prove the topology rule itself).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import flyte
import pytest
from _plugin_helpers import by_id, run_local

from flyteplugins.wandb import WandbStrayRank, get_distributed_info, get_wandb_run, wandb_init
from flyteplugins.wandb_core import make_base

pytestmark = pytest.mark.timeout(300)

env = flyte.TaskEnvironment(name="stray_rank")


@wandb_init(run_mode="new")
@env.task
def plain() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    run.log({"step": 1})
    return [
        str(run.id),
        str(run.group or ""),
        repr(get_distributed_info()),
        flyte.ctx().action.name,
    ]


def _stray(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, WandbStrayRank)]


@pytest.mark.parametrize(
    ("variable", "value", "other"), [("RANK", "1", "WORLD_SIZE"), ("WORLD_SIZE", "4", "RANK")]
)
def test_a_plain_task_runs_as_one_process_and_says_why(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, other: str
) -> None:
    for name in ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID", "FLYTE_CLUSTERED_WORKER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_name = f"stray-{variable.lower().replace('_', '-')}"
        run_id, group, info, action = run_local(plain, name=run_name)
    said = _stray(record)
    assert said, [str(w.message) for w in record]
    assert said[0].startswith(f"{variable}={value} is set but {other} is not"), said
    assert f"Unset {variable}" in said[0]
    # Planned as a single process: run_mode="new" gives {base}, no group, no rank suffix.
    assert info == "None"
    assert (run_id, group) == (make_base(run_name, action), "")
    [recs] = by_id(wandb_offline).values()
    assert [r.run_id for r in recs] == [run_id]
    assert recs[0].group is None and recs[0].finished and recs[0].exit_code == 0
    assert recs[0].history[0]["step"] == 1


@pytest.mark.parametrize("marker", ["TORCHELASTIC_RUN_ID", "FLYTE_CLUSTERED_WORKER"])
def test_under_a_distributed_launcher_it_stays_an_error(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv(marker, "1")
    with pytest.raises(Exception, match="RANK=1 is set but WORLD_SIZE is not") as caught:
        run_local(plain, name=f"strict-{marker.lower().replace('_', '-')}")
    assert "treats this task as a single process" not in str(caught.value)
    assert by_id(wandb_offline) == {}  # no run was started


def test_a_malformed_rank_is_an_error_everywhere(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WORLD_SIZE", "TORCHELASTIC_RUN_ID", "FLYTE_CLUSTERED_WORKER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(Exception, match="RANK='one' is not an integer"):
        run_local(plain, name="malformed-rank")
    assert by_id(wandb_offline) == {}
