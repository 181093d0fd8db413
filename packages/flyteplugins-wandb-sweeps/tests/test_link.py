"""WandbSweep: the sweep's page when its id is known at submit time, else the sweeps page.

Expected URLs are the installed client's own (``wandb.Settings(...).sweep_url``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flyteplugins.wandb import wandb_config
from flyteplugins.wandb_sweeps import WandbSweep, wandb_sweep_config
from flyteplugins.wandb_sweeps._context import SweepRef, sweep_entries


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


def test_local_sweep_has_no_page_of_its_own() -> None:
    parent = sweep_entries(SweepRef("abc", project="p", entity="e", local=True))
    assert link(WandbSweep(), parent) == sweeps_page("e", "p")


def test_decorator_settings_win_and_host_comes_from_wandb_config() -> None:
    ctx = {**wandb_config(project="p", entity="e", host="https://api.wandb.ai"),
           **wandb_sweep_config(project="q")}  # fmt: skip
    assert link(WandbSweep(project="r", entity="f"), ctx) == sweeps_page(
        "f", "r", "https://api.wandb.ai"
    )
    assert link(WandbSweep(), {**wandb_config(project="a b", entity="e")}) == sweeps_page(
        "e", "a b"
    )
