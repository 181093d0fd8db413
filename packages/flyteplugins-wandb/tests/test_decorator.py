"""@wandb_init on plain functions (real wandb offline) and the small helpers around it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flyteplugins.wandb import (
    get_distributed_info,
    get_wandb_run,
    get_wandb_run_dir,
    wandb_config,
    wandb_init,
)
from flyteplugins.wandb._records import read_runs


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import wandb

    for var in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_SERVICE", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    wandb.teardown()
    yield tmp_path
    wandb.teardown()


def test_plain_functions_nest_and_restore(offline: Path) -> None:
    import wandb

    @wandb_init(run_mode="new", project="inner")
    def inner() -> str:
        run = get_wandb_run()
        assert run is not None
        run.log({"inner": 1})
        return str(run.id)

    @wandb_init(project="outer")
    def outer() -> tuple[str, str, str]:
        run = get_wandb_run()
        assert run is not None
        assert get_wandb_run_dir() == run.dir  # the folder W&B uploads, as in 2.x
        child = inner()
        assert get_wandb_run() is run
        assert wandb.run is run
        wandb.log({"outer": 2})
        return str(run.id), child, str(run.project)

    assert get_wandb_run() is None
    outer_id, inner_id, project = outer()
    assert project == "outer"
    assert outer_id != inner_id
    assert get_wandb_run() is None
    assert get_wandb_run_dir() is None
    wandb.teardown()
    runs = {r.run_id: r for r in read_runs(offline)}
    assert runs[outer_id].metric("outer") == [2]
    assert runs[inner_id].metric("inner") == [1]
    assert runs[inner_id].project == "inner"
    assert {r.exit_code for r in runs.values()} == {0}


def test_context_block_reaches_plain_functions(offline: Path) -> None:
    @wandb_init
    async def fn() -> str:
        run = get_wandb_run()
        assert run is not None
        return str(run.project)

    with wandb_config(project="2024"):
        assert asyncio.run(fn()) == "2024"


def test_decorating_twice_or_a_value_is_rejected() -> None:
    @wandb_init
    def fn() -> None: ...

    with pytest.raises(ValueError, match="applied twice"):
        wandb_init(fn)
    with pytest.raises(TypeError, match="decorates a Flyte task or a function"):
        wandb_init(42)


def test_distributed_info(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert get_distributed_info() is None
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("GROUP_RANK", "1")
    assert get_distributed_info() == {
        "rank": 5,
        "local_rank": 1,
        "world_size": 8,
        "local_world_size": 4,
        "worker_index": 1,
        "num_workers": 2,
    }


def test_an_api_key_is_refused_at_decoration() -> None:
    secret = "s" * 40
    with pytest.raises(ValueError, match="WANDB_API_KEY") as info:
        wandb_init(api_key=secret)
    assert secret not in str(info.value)


def test_flyte_identity_never_replaces_user_config() -> None:
    from flyteplugins.wandb._client import ClientDefaults
    from flyteplugins.wandb._resolve import Identity, resolve

    identity = Identity(run_name="r", action_name="a", project="p", domain="d", attempt=0)
    ident = identity.as_config()

    def config(user: dict[str, Any] | None) -> Any:
        settings = {} if user is None else {"config": user}
        r = resolve(settings, kind="task", defaults=ClientDefaults(), identity=identity)
        return r.init_kwargs["config"]

    assert config({"lr": 1}) == {"lr": 1, "flyte": ident}
    assert config({"flyte": "mine"}) == {"flyte": "mine", "_flyte": ident}
    assert config({"flyte": "mine", "_flyte": 2}) == {
        "flyte": "mine",
        "_flyte": 2,
        "__flyte": ident,
    }
    assert config(None) == {"flyte": ident}


def test_task_called_as_a_function_outside_flyte_gets_fresh_runs(offline: Path) -> None:
    import flyte

    env = flyte.TaskEnvironment(name="unit_plain_call")

    @wandb_init
    @env.task
    def task() -> str:
        run = get_wandb_run()
        assert run is not None
        return str(run.id)

    first, second = task(), task()
    assert first != second
    import wandb

    wandb.teardown()
    assert {r.run_id for r in read_runs(offline)} == {first, second}
    assert {r.exit_code for r in read_runs(offline)} == {0}


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        ("wandb.ai", "https://api.wandb.ai"),
        ("https://wandb.ai/", "https://api.wandb.ai"),
        ("wandb.example.com", "https://wandb.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_host_becomes_the_client_base_url(offline: Path, host: str, base_url: str) -> None:
    @wandb_init(host=host)
    def fn() -> str:
        run = get_wandb_run()
        assert run is not None
        return str(run.settings.base_url)

    assert fn() == base_url
