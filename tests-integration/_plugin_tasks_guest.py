"""A module with decorated tasks, imported by the guest scenario of ``_plugin_tasks``."""

from __future__ import annotations

import flyte

from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="plugin_tasks_guest")


@wandb_init(project="guest", entity="team")
@env.task
async def guest_task() -> bool:
    run = get_wandb_run()
    assert run is not None
    run.log({"x": 1})
    return True
