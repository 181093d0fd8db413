"""The Wandb link: rendered by Flyte for real local runs and matching the runs W&B recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import flyte
import pytest
from _plugin_helpers import by_id, reset_wandb

from flyteplugins.wandb import Wandb, get_wandb_run, wandb_config, wandb_init

env = flyte.TaskEnvironment(name="plugin_links")


@wandb_init(run_mode="new", project="kid")
@env.task
async def new_kid() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@wandb_init
@env.task
async def auto_kid() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@wandb_init(id="fixed-child-id")
@env.task
async def fixed_kid() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@wandb_init
@env.task
async def linked_parent() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [str(run.id), await new_kid(), await auto_kid(), await fixed_kid()]


def test_links_recorded_by_flyte_point_at_the_recorded_runs(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(wandb_offline))  # flyte's local run database goes here
    reset_wandb()
    flyte.init(local_persistence=True)
    try:
        ctx = wandb_config(entity="team", project="proj")
        run = flyte.with_runcontext(mode="local", name="links", custom_context=ctx).run(
            linked_parent
        )
        parent_id, new_id, auto_id, fixed_id = run.outputs()[0]
    finally:
        flyte.init()
    db = wandb_offline / ".flyte" / "local-cache" / "cache.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select log_links from runs where log_links is not null").fetchall()
    links = {url for (raw,) in rows for _, url in json.loads(raw)}
    assert links == {
        f"https://wandb.ai/team/proj/runs/{parent_id}",
        f"https://wandb.ai/team/kid/runs/{new_id}",
        f"https://wandb.ai/team/proj/runs/{fixed_id}",
    }
    assert auto_id == parent_id
    assert fixed_id == "fixed-child-id"
    assert set(by_id(wandb_offline)) == {parent_id, new_id, fixed_id}


def _link(**kw: object) -> str:
    ctx = kw.pop("context", {})
    action = kw.pop("action_name", "a1")
    return Wandb(**kw).get_link(  # type: ignore[arg-type]
        run_name="r1",
        project="flyte-project",
        domain="development",
        context=ctx,  # type: ignore[arg-type]
        parent_action_name="a0",
        action_name=action,  # type: ignore[arg-type]
        pod_name="pod",
    )


def test_link_uses_decorator_then_context() -> None:
    ctx = dict(wandb_config(project="ctx-p", entity="ctx-e", host="wandb.example.com"))
    assert _link(context=ctx) == "https://wandb.example.com/ctx-e/ctx-p/runs/r1-a1"
    assert _link(project="dec-p", context=ctx) == "https://wandb.example.com/ctx-e/dec-p/runs/r1-a1"
    assert _link(id="mine", context=ctx) == "https://wandb.example.com/ctx-e/ctx-p/runs/mine"


def test_link_keeps_flyte_templates() -> None:
    url = _link(project="p", entity="e", action_name="{{.actionName}}")
    assert url == "https://wandb.ai/e/p/runs/r1-{{.actionName}}"


def test_link_of_a_distributed_task() -> None:
    per_worker = [
        _link(project="p", entity="e", rank_scope="worker", nnodes=2, nproc_per_node=4, worker=i)
        for i in (0, 1)
    ]
    assert per_worker == [
        "https://wandb.ai/e/p/runs/r1-a1-worker-0",
        "https://wandb.ai/e/p/runs/r1-a1-worker-1",
    ]
    group = _link(project="p", entity="e", run_mode="new", nnodes="1:4", nproc_per_node=2)
    assert group == "https://wandb.ai/e/p/groups/r1-a1"


def test_bad_link_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="run_mode 'sometimes'"):
        Wandb(run_mode="sometimes")


def test_link_of_a_child_follows_the_published_parent_run() -> None:
    from flyteplugins.wandb._context import parent_entries

    ctx = {
        **wandb_config(project="ctx-p", entity="ctx-e"),
        **parent_entries("parent-run", "https://wandb.example.com", "par-e", "par-p"),
    }
    # auto and shared children log to the parent's run, on the parent's server and project
    assert _link(context=ctx) == "https://wandb.example.com/par-e/par-p/runs/parent-run"
    assert _link(run_mode="shared", context=ctx) == (
        "https://wandb.example.com/par-e/par-p/runs/parent-run"
    )
    # a new-mode child has its own run, configured by the context
    assert _link(run_mode="new", context=ctx) == "https://wandb.ai/ctx-e/ctx-p/runs/r1-a1"
