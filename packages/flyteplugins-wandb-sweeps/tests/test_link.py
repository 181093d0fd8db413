"""WandbSweep: the sweep's page when its id is known at submit time, else the sweeps page.

Expected URLs are the installed client's own (``wandb.Settings(...).sweep_url``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flyte
import pytest

from flyteplugins.wandb import wandb_config
from flyteplugins.wandb_sweeps import WandbSweep, wandb_sweep, wandb_sweep_config
from flyteplugins.wandb_sweeps._context import sweep_entries
from flyteplugins.wandb_sweeps._state import SweepRef

env = flyte.TaskEnvironment(name="sweeps_link_tests")


@env.task
def sweep_task() -> None:
    """A task for the link tests to decorate; never run."""


@pytest.fixture(autouse=True)
def no_client_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_APP_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))


def client_sweep_url(entity: str, project: str, sweep_id: str, base_url: str | None = None) -> str:
    import wandb

    kw = {"base_url": base_url} if base_url else {}
    return str(wandb.Settings(entity=entity, project=project, sweep_id=sweep_id, **kw).sweep_url)


def sweeps_page(entity: str, project: str, base_url: str | None = None) -> str:
    return client_sweep_url(entity, project, "x", base_url).removesuffix("/x")


def link(ws: WandbSweep, ctx: dict[str, str]) -> str:
    return ws.get_link("run", "proj", "dev", ctx, "parent", "{{.actionName}}", "pod")


def test_new_sweep_points_at_the_projects_sweeps_page() -> None:
    ctx = {**wandb_config(project="p", entity="e")}
    assert link(WandbSweep(), ctx) == sweeps_page("e", "p")
    ctx = {**wandb_config(project="p", entity="e"), **wandb_sweep_config(project="q")}
    assert link(WandbSweep(), ctx) == sweeps_page("e", "q")


def test_no_entity_links_the_app_not_an_invalid_url() -> None:
    import wandb

    assert link(WandbSweep(), {}) == wandb.Settings().app_url
    assert link(WandbSweep(project="p", sweep_id="s1"), {}) == wandb.Settings().app_url


def test_known_id_points_at_the_sweep() -> None:
    assert link(WandbSweep(project="p", entity="e", sweep_id="s1"), {}) == client_sweep_url(
        "e", "p", "s1"
    )
    assert link(WandbSweep(project="p", entity="e", id="s1"), {}) == client_sweep_url(
        "e", "p", "s1"
    )
    parent = sweep_entries(SweepRef("abc", project="p", entity="e", host="http://127.0.0.1:9"))
    assert link(WandbSweep(), parent) == client_sweep_url("e", "p", "abc", "http://127.0.0.1:9")


def test_a_published_local_sweep_is_linked_by_its_id() -> None:
    parent = sweep_entries(SweepRef("abc", project="p", entity="e", local=True))
    assert link(WandbSweep(), parent) == client_sweep_url("e", "p", "abc")


def action_link(ws: WandbSweep, ctx: dict[str, str], run: str, action: str) -> str:
    return ws.get_link(run, "proj", "dev", ctx, "parent", action, "pod")


def creating(**kwargs: Any) -> WandbSweep:
    """The link as ``@wandb_sweep`` adds it: on a task that creates the sweep."""
    ws = WandbSweep(**kwargs)
    ws._creates = True
    return ws


def test_the_decorator_marks_its_link_as_the_creating_tasks() -> None:
    task = wandb_sweep(method="grid", parameters={"a": {"values": [1]}})(sweep_task)
    [ws] = [x for x in task.links if isinstance(x, WandbSweep)]
    assert ws._creates


def test_offline_a_link_on_a_task_that_creates_no_sweep_points_at_the_sweeps_page() -> None:
    # issue 22: it named a local sweep derived from the action, which is never created
    ctx = {**wandb_config(project="p", entity="e", mode="offline")}
    assert action_link(WandbSweep(), ctx, "r1", "a1") == sweeps_page("e", "p")
    published = sweep_entries(SweepRef("abc", project="p", entity="e", local=True))
    assert action_link(WandbSweep(), {**ctx, **published}, "r1", "a1") == client_sweep_url(
        "e", "p", "abc"
    )


@pytest.mark.parametrize(
    ("ws", "ctx"),
    [
        (creating(local_controller=True), {**wandb_config(project="p", entity="e")}),
        (creating(), {**wandb_config(project="p", entity="e", mode="offline")}),
        (
            creating(),
            {**wandb_config(project="p", entity="e"), **wandb_sweep_config(local_controller=True)},
        ),
        (creating(project="p", entity="e"), {**wandb_config(mode="disabled")}),
    ],
)
def test_a_local_sweep_the_task_creates_is_linked_by_its_derived_id(
    ws: WandbSweep, ctx: dict[str, str]
) -> None:
    from flyteplugins.wandb_sweeps._controller import local_sweep_id

    expected = client_sweep_url("e", "p", local_sweep_id("r1", "a1"))
    assert action_link(ws, ctx, "r1", "a1") == expected


def test_the_offline_environment_makes_the_new_sweep_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flyteplugins.wandb_sweeps._controller import local_sweep_id

    ctx = {**wandb_config(project="p", entity="e")}
    assert action_link(creating(), ctx, "r1", "a1") == sweeps_page("e", "p")
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert action_link(creating(), ctx, "r1", "a1") == client_sweep_url(
        "e", "p", local_sweep_id("r1", "a1")
    )
    # asked for online in the settings: a server sweep, whose id is not known yet
    online = {**wandb_config(project="p", entity="e", mode="online")}
    assert action_link(creating(), online, "r1", "a1") == sweeps_page("e", "p")


def test_a_local_sweep_link_keeps_the_action_template() -> None:
    from flyteplugins.wandb_sweeps._controller import local_sweep_id

    ctx = {**wandb_config(project="p", entity="e", mode="offline")}
    url = action_link(creating(), ctx, "r1", "{{.actionName}}")
    real = local_sweep_id("r1", "a7")
    assert url.replace("{{.actionName}}", "a7") == client_sweep_url("e", "p", real)


def test_decorator_settings_win_and_host_comes_from_wandb_config() -> None:
    ctx = {**wandb_config(project="p", entity="e", host="https://api.wandb.ai"),
           **wandb_sweep_config(project="q")}  # fmt: skip
    assert link(WandbSweep(project="r", entity="f"), ctx) == sweeps_page(
        "f", "r", "https://api.wandb.ai"
    )
    assert link(WandbSweep(), {**wandb_config(project="a b", entity="e")}) == sweeps_page(
        "e", "a b"
    )
