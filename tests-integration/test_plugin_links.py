"""The Wandb link: rendered by Flyte for real local runs and matching the runs W&B recorded.

Every expected URL is the installed client's own (``wandb.Settings(...).run_url``), so a client
that changes its hosts or URL shapes fails here instead of giving users dead links.
"""

from __future__ import annotations

from pathlib import Path

import flyte
import pytest
from _plugin_helpers import by_id, recorded_links, reset_wandb

from flyteplugins.wandb import Wandb, get_wandb_run, wandb_config, wandb_init

env = flyte.TaskEnvironment(name="plugin_links")


def client_run_url(entity: str, project: str, run_id: str, base_url: str | None = None) -> str:
    """The URL the installed client gives the run ``entity/project/run_id`` on ``base_url``."""
    import wandb

    kw = {"base_url": base_url} if base_url else {}
    return str(wandb.Settings(entity=entity, project=project, run_id=run_id, **kw).run_url)


@pytest.fixture(autouse=True)
def client_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No server, entity or project from the machine running the tests."""
    for var in ("WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_APP_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


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
    links = recorded_links("links")
    assert links == {
        client_run_url("team", "proj", parent_id),
        client_run_url("team", "kid", new_id),
        client_run_url("team", "proj", fixed_id),
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
    host = "https://wandb.example.com"
    ctx = dict(wandb_config(project="ctx-p", entity="ctx-e", host="wandb.example.com"))
    assert _link(context=ctx) == client_run_url("ctx-e", "ctx-p", "r1-a1", host)
    assert _link(project="dec-p", context=ctx) == client_run_url("ctx-e", "dec-p", "r1-a1", host)
    assert _link(id="mine", context=ctx) == client_run_url("ctx-e", "ctx-p", "mine", host)


def test_link_on_the_default_server_is_the_clients_run_url() -> None:
    url = _link(project="p", entity="e")
    assert url == client_run_url("e", "p", "r1-a1")
    assert url.startswith("https://forge.coreweave.com/wandb/")  # wandb 0.31's default


@pytest.mark.parametrize(
    "host",
    [
        "https://api.forge.coreweave.com",
        "https://forge.coreweave.com/wandb",
        "forge.coreweave.com",
        "https://api.wandb.ai",
        "wandb.ai",
        "http://127.0.0.1:8123",
        "https://wandb.acme.io/",
    ],
)
def test_link_of_a_host_is_the_clients_run_url_for_that_server(host: str) -> None:
    from flyteplugins.wandb._client import api_url_for_host

    url = _link(project="p", entity="e", host=host)
    assert url == client_run_url("e", "p", "r1-a1", api_url_for_host(host))
    assert "://api." not in url  # never the API host


def test_link_takes_entity_and_project_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_ENTITY", "env-team")
    monkeypatch.setenv("WANDB_PROJECT", "env-proj")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:8123")
    assert _link() == client_run_url("env-team", "env-proj", "r1-a1", "http://127.0.0.1:8123")
    assert _link(project="dec") == client_run_url(
        "env-team", "dec", "r1-a1", "http://127.0.0.1:8123"
    )


def test_link_takes_the_server_and_entity_from_the_clients_settings_file(
    tmp_path: Path,
) -> None:
    settings = tmp_path / "wandb-config" / "settings"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text("[default]\nbase_url = http://127.0.0.1:8123\nentity = file-team\n")
    assert _link(project="p") == client_run_url("file-team", "p", "r1-a1", "http://127.0.0.1:8123")


def test_link_without_an_entity_is_never_an_invalid_url() -> None:
    import wandb

    app = wandb.Settings().app_url
    assert _link() == app
    assert _link(project="p") == app


def test_decoration_warns_about_nothing_without_an_entity() -> None:
    """The run's context may still carry the entity (``wandb_config`` at submit time): only a
    run that starts with no entity at all says its link could not name it
    (``test_client_rules.py``)."""
    import warnings

    local = flyte.TaskEnvironment(name="plugin_links_no_entity")
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        @wandb_init(project="p")
        @local.task
        def nameless() -> None: ...


def test_link_keeps_flyte_templates() -> None:
    url = _link(project="p", entity="e", action_name="{{.actionName}}")
    assert url == client_run_url("e", "p", "r1-a1").replace("r1-a1", "r1-{{.actionName}}")


def test_link_of_a_distributed_task() -> None:
    per_worker = [
        _link(project="p", entity="e", rank_scope="worker", nnodes=2, nproc_per_node=4, worker=i)
        for i in (0, 1)
    ]
    assert per_worker == [
        client_run_url("e", "p", "r1-a1-worker-0"),
        client_run_url("e", "p", "r1-a1-worker-1"),
    ]
    group = _link(project="p", entity="e", run_mode="new", nnodes="1:4", nproc_per_node=2)
    assert group == client_run_url("e", "p", "x").replace("/runs/x", "/groups/r1-a1")


def test_bad_link_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="run_mode 'sometimes'"):
        Wandb(run_mode="sometimes")


def test_link_of_a_child_follows_the_published_parent_run() -> None:
    from flyteplugins.wandb._context import parent_entries

    ctx = {
        **wandb_config(project="ctx-p", entity="ctx-e"),
        **parent_entries("parent-run", "https://wandb.example.com", "par-e", "par-p"),
    }
    parent_url = client_run_url("par-e", "par-p", "parent-run", "https://wandb.example.com")
    # auto and shared children log to the parent's run, on the parent's server and project
    assert _link(context=ctx) == parent_url
    assert _link(run_mode="shared", context=ctx) == parent_url
    # a distributed child joins the parent's run too (global scope): same page as the runtime
    assert _link(nnodes=2, nproc_per_node=2, context=ctx) == parent_url
    assert _link(run_mode="shared", nnodes=1, nproc_per_node=2, context=ctx) == parent_url
    # per-worker runs of a child are its own runs, in its own project
    assert _link(rank_scope="worker", nnodes=2, nproc_per_node=2, worker=1, context=ctx) == (
        client_run_url("ctx-e", "ctx-p", "parent-run-worker-1")
    )
    # a new-mode child has its own run, configured by the context
    assert _link(run_mode="new", context=ctx) == client_run_url("ctx-e", "ctx-p", "r1-a1")


cached_env = flyte.TaskEnvironment(name="plugin_links_cached", cache="auto")


@wandb_init(project="cached", entity="team")
@cached_env.task
async def cached_task(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"x": x})
    return str(run.id)


def test_a_cached_action_links_no_run_that_will_not_exist(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With cache="auto" the second run is served from Flyte's cache: no W&B run is created, so
    neither action may link to a run page; both link the project, which exists either way."""
    import wandb

    monkeypatch.setenv("HOME", str(wandb_offline))
    reset_wandb()
    flyte.init(local_persistence=True)
    try:
        first = flyte.with_runcontext(mode="local", name="cached-1").run(cached_task, 3)
        second = flyte.with_runcontext(mode="local", name="cached-2").run(cached_task, 3)
        assert first.outputs()[0] == second.outputs()[0]  # the cached value
    finally:
        flyte.init()
    project_page = wandb.Settings(entity="team", project="cached").project_url
    assert recorded_links("cached-1") == {project_page}  # ran: a run exists, the link is valid
    assert recorded_links("cached-2") == {project_page}  # cache hit: no run, still valid
    assert len(by_id(wandb_offline)) == 1  # one W&B run: the second action never ran
