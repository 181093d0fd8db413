"""WandbSweep: the sweep's page when its id is known at submit time, else the sweeps page."""

from __future__ import annotations

from flyteplugins.wandb import wandb_config
from flyteplugins.wandb_sweeps import WandbSweep, wandb_sweep_config
from flyteplugins.wandb_sweeps._context import SweepRef, sweep_entries


def link(ws: WandbSweep, ctx: dict[str, str]) -> str:
    return ws.get_link("run", "proj", "dev", ctx, "parent", "{{.actionName}}", "pod")


def test_new_sweep_points_at_the_projects_sweeps_page() -> None:
    ctx = {**wandb_config(project="p", entity="e")}
    assert link(WandbSweep(), ctx) == "https://wandb.ai/e/p/sweeps"
    ctx = {**wandb_config(project="p", entity="e"), **wandb_sweep_config(project="q")}
    assert link(WandbSweep(), ctx) == "https://wandb.ai/e/q/sweeps"
    assert link(WandbSweep(), {}) == "https://wandb.ai/uncategorized/sweeps"


def test_known_id_points_at_the_sweep() -> None:
    assert link(WandbSweep(project="p", sweep_id="s1"), {}) == "https://wandb.ai/p/sweeps/s1"
    parent = sweep_entries(SweepRef("abc", project="p", entity="e", host="http://127.0.0.1:9"))
    assert link(WandbSweep(), parent) == "http://127.0.0.1:9/e/p/sweeps/abc"


def test_local_sweep_has_no_page_of_its_own() -> None:
    parent = sweep_entries(SweepRef("abc", project="p", entity="e", local=True))
    assert link(WandbSweep(), parent) == "https://wandb.ai/e/p/sweeps"


def test_decorator_settings_win_and_host_comes_from_wandb_config() -> None:
    ctx = {**wandb_config(project="p", entity="e", host="https://api.wandb.ai"),
           **wandb_sweep_config(project="q")}  # fmt: skip
    assert link(WandbSweep(project="r", entity="f"), ctx) == "https://wandb.ai/f/r/sweeps"
    assert link(WandbSweep(), {**wandb_config(project="a b")}) == "https://wandb.ai/a%20b/sweeps"
