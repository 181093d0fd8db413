"""@wandb_init on real local Flyte runs with the real wandb client offline.

Every assertion reads what W&B recorded in the ``run-<id>.wandb`` files.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import flyte
import pytest
import wandb
from _plugin_helpers import by_id, only, records, run_local, user_rows

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb_core import make_base

env = flyte.TaskEnvironment(name="plugin_runs")


# ----------------------------------------------------------------------------- tasks


@wandb_init(project="single", config={"lr": 0.1})
@env.task
def single(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"loss": 1.0 / (i + 1)})
    return str(run.id)


@wandb_init
@env.task
async def child_auto(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"child": x})
    return str(run.id)


@wandb_init(run_mode="new")
@env.task
async def child_new(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"child_new": x})
    return str(run.id)


@wandb_init(run_mode="shared")
@env.task
def child_shared(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"child_shared": x})
    return str(run.id)


@wandb_init(project="fam")
@env.task
async def parent_auto() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    run.log({"parent": 1})
    a = await child_auto(2)
    # the parent's run is current again, also for the module-level wandb API
    assert get_wandb_run() is run
    assert wandb.run is run
    b = await child_new(3)
    assert get_wandb_run() is run
    assert wandb.run is run
    wandb.log({"parent": 4})
    c = await child_shared.aio(5)
    return [str(run.id), a, b, c]


@wandb_init(project="from-decorator", run_mode="new")
@env.task
def precedence() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.project)


@wandb_init
@env.task
async def child_reports() -> list[Any]:
    run = get_wandb_run()
    assert run is not None
    return [run.project, run.id, run.config.get("flyte", {}).get("action_name")]


@wandb_init(run_mode="new")
@env.task
async def nested_parent() -> list[list[Any]]:
    out = [await child_reports()]
    with wandb_config(project="inner"):
        out.append(await child_reports())
        with wandb_config(tags=["deeper"]):
            out.append(await child_reports())
    out.append(await child_reports())
    return out


@wandb_init
@env.task
def literal_values() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"v": 1})
    return str(run.id)


@wandb_init
@env.task
def failing(steps: int) -> int:
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"before_failure": i})
    raise ValueError("boom at the end")


@wandb_init(project="ovr")
@env.task
def overridable() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"overridden": 1})
    return str(run.id)


@env.task
async def calls_override() -> str:
    return await overridable.override(retries=1, short_name="ovr2").aio()


@flyte.trace
async def traced_step(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"traced": x})
    return str(run.id)


@wandb_init
def helper(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"helper": x})
    return str(run.id)


@wandb_init
@env.task
async def with_trace_and_helper() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [str(run.id), await traced_step(1), helper(2)]


@env.task
def undecorated_calls_helper() -> str:
    assert get_wandb_run() is None
    rid = helper(7)
    assert get_wandb_run() is None
    return rid


@wandb_init(run_mode="new")
@env.task
async def concurrent_child(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(3):
        run.log({"x": x, "i": i})
        await asyncio.sleep(0.01)
        assert get_wandb_run() is run
    return str(run.id)


@wandb_init
@env.task
async def concurrent_parent() -> list[str]:
    ids = list(await asyncio.gather(concurrent_child(1), concurrent_child(2)))
    # whichever child ended last, the module-level slot is the parent's run again
    assert wandb.run is get_wandb_run()
    return ids


@env.task
def no_wandb_here() -> bool:
    return get_wandb_run() is None


# ----------------------------------------------------------------------------- tests


def test_single_task_records_id_project_config_rows(wandb_offline: Path) -> None:
    rid = run_local(single, 5, name="single-run", custom_context=wandb_config(tags=["a", "b"]))
    rec = only(wandb_offline)
    assert rec.run_id == rid
    assert rid.startswith("single-run-")
    assert rec.project == "single"
    assert rec.tags == ["a", "b"]
    assert rec.config["lr"] == 0.1
    flyte_cfg = rec.config["flyte"]
    assert flyte_cfg["run_name"] == "single-run"
    assert rid == make_base("single-run", flyte_cfg["action_name"])
    assert flyte_cfg["attempt"] == 0
    assert [r["loss"] for r in user_rows(rec)] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert rec.exit_code == 0


def test_parent_and_children_modes(wandb_offline: Path) -> None:
    parent_id, auto_id, new_id, shared_id = run_local(parent_auto, name="fam-run")
    # auto and shared children in the same process log to the parent's live run
    assert auto_id == parent_id
    assert shared_id == parent_id
    assert new_id != parent_id
    runs = by_id(wandb_offline)
    assert set(runs) == {parent_id, new_id}
    (parent,) = runs[parent_id]
    rows = user_rows(parent)
    assert rows == [{"parent": 1}, {"child": 2}, {"parent": 4}, {"child_shared": 5}]
    assert parent.project == "fam"
    assert parent.exit_code == 0
    (new,) = runs[new_id]
    assert user_rows(new) == [{"child_new": 3}]
    # the decorator's project is for its own task only: the new child's run is elsewhere
    assert new.project != "fam"
    assert new.exit_code == 0


def test_shared_without_parent_creates_its_own_run(wandb_offline: Path) -> None:
    rid = run_local(child_shared, 9, name="lonely")
    rec = only(wandb_offline)
    assert rec.run_id == rid
    assert rid.startswith("lonely-")
    assert user_rows(rec) == [{"child_shared": 9}]
    assert rec.exit_code == 0


def test_decorator_wins_over_context(wandb_offline: Path) -> None:
    ctx = wandb_config(project="from-context", run_mode="shared", entity="team")
    project = run_local(precedence, custom_context=ctx)
    assert project == "from-decorator"
    rec = only(wandb_offline)
    assert rec.project == "from-decorator"
    assert rec.entity == "team"  # not set on the decorator: the context's value


def test_nested_wandb_config_overrides_only_given_keys(wandb_offline: Path) -> None:
    out = run_local(
        nested_parent, name="nest", custom_context=wandb_config(project="outer", run_mode="new")
    )
    projects = [o[0] for o in out]
    assert projects == ["outer", "inner", "inner", "outer"]
    # run_mode="new" from the outer context survived the nested blocks: each child has its own run
    ids = [o[1] for o in out]
    assert len(set(ids)) == 4
    runs = by_id(wandb_offline)
    assert len(runs) == 5  # the parent and four children
    tags = {r.run_id: r.tags for recs in runs.values() for r in recs}
    assert tags[ids[2]] == ["deeper"]
    assert tags[ids[1]] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project", "2024"),
        ("name", "null"),
        ("group", "true"),
        ("notes", "1.5e3"),
        ("job_type", "[]"),
    ],
)
def test_values_that_look_like_other_types_stay_strings(
    wandb_offline: Path, field: str, value: str
) -> None:
    run_local(literal_values, custom_context=wandb_config(**{field: value}, tags=["1", "false"]))
    rec = only(wandb_offline)
    recorded = {
        "project": rec.project,
        "name": rec.name,
        "group": rec.group,
        "notes": rec.notes,
        "job_type": rec.job_type,
    }[field]
    assert recorded == value
    assert rec.tags == ["1", "false"]


def test_unrelated_context_keys_are_ignored(wandb_offline: Path) -> None:
    ctx = {
        **wandb_config(project="mine"),
        "team": "a",
        "wandb_project": "someone-elses",
        "wandb_api": "not ours",
    }
    run_local(literal_values, custom_context=ctx)
    assert only(wandb_offline).project == "mine"


def test_failing_task_is_failed_in_wandb_and_keeps_rows(wandb_offline: Path) -> None:
    with pytest.raises(Exception, match="boom at the end"):
        run_local(failing, 3, name="fails")
    rec = only(wandb_offline)
    assert rec.exit_code not in (None, 0)
    assert [r["before_failure"] for r in user_rows(rec)] == [0, 1, 2]


def test_override_keeps_wandb(wandb_offline: Path) -> None:
    overridden = overridable.override(retries=2)
    assert overridden.func is overridable.func
    assert any(type(link).__name__ == "Wandb" for link in overridden.links)
    rid = run_local(calls_override, name="ovr")
    rec = only(wandb_offline)
    assert rec.run_id == rid
    assert rec.project == "ovr"
    assert user_rows(rec) == [{"overridden": 1}]


def test_environment_registry_holds_the_decorated_task() -> None:
    assert env.tasks["plugin_runs.single"] is single
    assert getattr(single.func, "__wrapped__", None) is not None


def test_traces_and_helpers_use_the_task_run(wandb_offline: Path) -> None:
    task_id, traced_id, helper_id = run_local(with_trace_and_helper)
    assert traced_id == task_id
    assert helper_id == task_id
    rec = only(wandb_offline)
    assert user_rows(rec) == [{"traced": 1}, {"helper": 2}]


def test_helper_in_undecorated_task_gets_its_own_run(wandb_offline: Path) -> None:
    rid = run_local(undecorated_calls_helper)
    rec = only(wandb_offline)
    assert rec.run_id == rid
    assert user_rows(rec) == [{"helper": 7}]
    assert rec.exit_code == 0


def test_concurrent_children_each_see_their_own_run(wandb_offline: Path) -> None:
    a, b = run_local(concurrent_parent)
    assert a != b
    runs = by_id(wandb_offline)
    assert {r["x"] for r in user_rows(runs[a][0])} == {1}
    assert {r["x"] for r in user_rows(runs[b][0])} == {2}


def test_get_wandb_run_is_none_outside(wandb_offline: Path) -> None:
    assert get_wandb_run() is None
    assert run_local(no_wandb_here) is True
    assert records(wandb_offline) == []
