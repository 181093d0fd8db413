"""Code written for the published flyteplugins-wandb 2.12.1, run unchanged on ours.

The tasks below are the 2.12.1 README's examples (imports and calls as written there, with
``env`` defined) plus the 2.x functions its docstrings describe: ``get_wandb_context``,
``get_wandb_run_dir``, ``download_wandb_run_dir``, ``download_wandb_run_logs``,
``download_wandb_sweep_dirs``, ``download_wandb_sweep_logs``. They run as real local Flyte runs
with the real client, offline (and against the project's test server for the sweep example,
which needs ``wandb.agent``); the assertions read what W&B recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import flyte
import pytest
import wandb
from _plugin_helpers import by_id, only, records, run_local, user_rows
from flyte.io import Dir
from servers import WandbTestServer

# the README's imports, and the other 2.12.1 names
from flyteplugins.wandb import (
    Wandb,
    WandbSweep,
    download_wandb_run_dir,
    download_wandb_run_logs,
    download_wandb_sweep_dirs,
    download_wandb_sweep_logs,
    get_wandb_context,
    get_wandb_run,
    get_wandb_run_dir,
    get_wandb_sweep_context,
    get_wandb_sweep_id,
    wandb_config,
    wandb_init,
    wandb_sweep,
    wandb_sweep_config,
)

env = flyte.TaskEnvironment(name="compat_2x")


# 1. Simple task with W&B logging
@wandb_init(project="my-project", entity="my-team")
@env.task
async def train_model(learning_rate: float) -> str:
    wandb_run = get_wandb_run()
    wandb_run.log({"loss": 0.5, "learning_rate": learning_rate})
    return wandb_run.id


# 2. Parent/Child tasks with run reuse
@wandb_init  # Automatically reuses parent's run ID
@env.task
async def child_task(x: int) -> str:
    wandb_run = get_wandb_run()
    wandb_run.log({"child_metric": x * 2})
    return wandb_run.id


@wandb_init(project="my-project", entity="my-team")
@env.task
async def parent_task() -> str:
    wandb_run = get_wandb_run()
    wandb_run.log({"parent_metric": 100})
    child_id = await child_task(5)
    assert child_id == wandb_run.id
    return wandb_run.id


# 4. Creating new runs for child tasks
@wandb_init(run_mode="new")  # Always creates a new run
@env.task
async def independent_child() -> str:
    wandb_run = get_wandb_run()
    wandb_run.log({"independent_metric": 42})
    return wandb_run.id


@wandb_init(project="my-project", entity="my-team")
@env.task
async def parent_of_independent() -> list[str]:
    return [get_wandb_run().id, await independent_child()]


def test_example_1_simple_task(wandb_offline: Path) -> None:
    run_id = run_local(train_model, 0.01)
    rec = only(wandb_offline)
    assert (rec.run_id, rec.project, rec.entity) == (run_id, "my-project", "my-team")
    assert user_rows(rec) == [{"loss": 0.5, "learning_rate": 0.01}]


def test_example_2_child_reuses_the_parents_run(wandb_offline: Path) -> None:
    run_id = run_local(parent_task)
    runs = by_id(wandb_offline)
    assert list(runs) == [run_id]
    rows = [row for rec in runs[run_id] for row in user_rows(rec)]
    assert {"parent_metric": 100} in rows and {"child_metric": 10} in rows


def test_example_3_config_through_the_run_context(wandb_offline: Path) -> None:
    # verbatim: custom_context=wandb_config(...) (the 2.x object, here a mapping) and a keyword
    flyte.init()
    r = flyte.with_runcontext(
        mode="local",
        custom_context=wandb_config(project="my-project", entity="my-team", tags=["experiment-1"]),
    ).run(train_model, learning_rate=0.001)
    run_id = r.outputs()[0]
    rec = only(wandb_offline)
    assert (rec.run_id, rec.tags) == (run_id, ["experiment-1"])
    # and with .to_dict(), as 2.x code also wrote it
    r = flyte.with_runcontext(
        mode="local", custom_context=wandb_config(tags=["experiment-2"]).to_dict()
    ).run(train_model, learning_rate=0.002)
    assert [rec.tags for rec in records(wandb_offline)] == [["experiment-1"], ["experiment-2"]]


def test_example_4_run_mode_new_child_gets_its_own_run(wandb_offline: Path) -> None:
    parent_id, child_id = run_local(parent_of_independent)
    assert parent_id != child_id
    assert set(by_id(wandb_offline)) == {parent_id, child_id}


# -- the 2.x functions ---------------------------------------------------------------------------


@wandb_init(project="compat", entity="team")
@env.task
async def writes_files(steps: int) -> str:
    ctx = get_wandb_context()
    assert ctx is not None and ctx.project == "compat" and ctx.tags == ["from-context"]
    run = get_wandb_run()
    assert get_wandb_run_dir() == run.dir
    Path(get_wandb_run_dir(), "notes.txt").write_text("kept with the run")
    for i in range(steps):
        run.log({"loss": 1.0 / (i + 1)})
    return run.id


@env.task
async def downloads_after(run_id: str, path: str) -> list[str]:
    folder = download_wandb_run_dir(run_id=run_id, path=path)
    logs = await download_wandb_run_logs(run_id)
    assert isinstance(logs, Dir)
    return [folder, logs.path]


def test_get_wandb_run_dir_and_the_download_functions(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (wandb_offline / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(wandb_offline / "tmp"))  # the default folder
    ctx = wandb_config(project="compat", tags=["from-context"])
    run_id = run_local(writes_files, 7, custom_context=ctx)
    assert get_wandb_context() is None  # outside any task or with block
    explicit = wandb_offline / "explicit"
    folder, logs = run_local(downloads_after, run_id, str(explicit))
    assert folder == str(explicit)
    assert logs == str(wandb_offline / "tmp" / "wandb_runs" / run_id)  # 2.x: /tmp/wandb_runs/ID
    for where in (Path(folder), Path(logs)):
        # the 2.x layout: the run's files at the top, summary.json, metrics_history.json
        assert (where / "notes.txt").read_text() == "kept with the run"  # written to run.dir
        history = json.loads((where / "metrics_history.json").read_text())
        assert [row["loss"] for row in history] == [1.0 / (i + 1) for i in range(7)]
        assert json.loads((where / "summary.json").read_text())["loss"] == 1.0 / 7
    without = download_wandb_run_dir(run_id, str(wandb_offline / "nohist"), False)
    assert not (Path(without) / "metrics_history.json").exists()


def test_download_wandb_run_dir_needs_a_run_outside_a_task(wandb_offline: Path) -> None:
    with pytest.raises(RuntimeError, match="needs a run_id"):
        download_wandb_run_dir()
    with pytest.raises(RuntimeError, match="could not be downloaded"):
        download_wandb_run_dir("no-such-run", str(wandb_offline / "x"))


def test_wandb_sweep_link_with_id() -> None:
    link = WandbSweep(project="p", entity="e", id="abc123")  # the host: the client's server
    assert link.get_link("r", "fp", "fd", {}, "a0", "a1", "pod").endswith("/e/p/sweeps/abc123")
    assert link.name == "Weights & Biases Sweep"


# -- decorator order -----------------------------------------------------------------------------


def test_the_reversed_decorator_order_is_a_function_run_without_links(
    wandb_offline: Path,
) -> None:
    """Below ``@env.task``, ``@wandb_init`` wraps a plain function that the task calls: it still
    records a run, but the task carries no W&B link (the guide says to put it on top; without
    reading stack frames the call cannot tell the two orders apart)."""

    @env.task
    @wandb_init(project="order")
    async def upside_down() -> int:
        run = get_wandb_run()
        assert run is not None
        run.log({"x": 1})
        return 1

    assert run_local(upside_down) == 1
    (rec,) = records(wandb_offline)
    assert [row["x"] for row in rec.history] == [1]
    assert not [link for link in upside_down.links or () if isinstance(link, Wandb)]


# -- 5. sweep agents in parallel (wandb.agent needs a server: the project's test server) ---------


def objective() -> None:  # the README's objective (synchronous: wandb.agent calls it)
    wandb_run = wandb.run
    config = wandb_run.config
    loss_value = config["learning_rate"] * config["batch_size"]
    wandb_run.log({"loss": loss_value})


objective = wandb_init(objective)


@wandb_sweep
@env.task
async def sweep_agent(agent_id: int, sweep_id: str, count: int = 5) -> int:
    wandb.agent(sweep_id, function=objective, count=count, project=get_wandb_context().project)
    return agent_id


@wandb_sweep
@env.task
async def run_parallel_sweep(num_agents: int = 2, trials_per_agent: int = 5) -> str:
    sweep_id = get_wandb_sweep_id()
    sweep_ctx = get_wandb_sweep_context()
    assert sweep_ctx is not None and sweep_ctx.method == "random"

    # Launch agents in parallel
    agent_tasks = [
        sweep_agent(agent_id=i + 1, sweep_id=sweep_id, count=trials_per_agent)
        for i in range(num_agents)
    ]

    # Wait for all agents to complete
    await asyncio.gather(*agent_tasks)
    return sweep_id


@env.task
async def collect(sweep_id: str, base: str) -> list[str]:
    paths = download_wandb_sweep_dirs(sweep_id=sweep_id, base_path=base)
    logs = await download_wandb_sweep_logs(sweep_id)
    return [*paths, logs.path]


@pytest.mark.online
def test_example_5_parallel_sweep_agents(
    wandb_online: WandbTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    ctx = {
        **wandb_config(project="my-project", entity="ent"),
        **wandb_sweep_config(
            method="random",
            metric={"name": "loss", "goal": "minimize"},
            parameters={
                "learning_rate": {"min": 0.0001, "max": 0.1},
                "batch_size": {"values": [16, 32, 64]},
            },
        ),
    }
    sweep_id = run_local(run_parallel_sweep, 2, 1, custom_context=ctx)
    assert [s["name"] for s in wandb_online.sweeps() if s["project"] == "my-project"] == [sweep_id]
    runs = list(wandb.Api().sweep(f"ent/my-project/{sweep_id}").runs)
    assert len(runs) == 2
    for r in runs:
        assert r.state == "finished"
        expected = r.config["learning_rate"] * r.config["batch_size"]
        assert r.summary_metrics["loss"] == pytest.approx(expected)

    *paths, logs = run_local(collect, sweep_id, str(tmp_path / "dirs"), custom_context=ctx)
    assert sorted(os.path.basename(p) for p in paths) == sorted(r.id for r in runs)
    assert Path(logs) == tmp_path / "tmp" / "wandb_runs" / f"wandb-sweep-{sweep_id}"
    for base in (Path(paths[0]).parent, Path(logs)):
        for r in runs:
            history = json.loads((base / r.id / "metrics_history.json").read_text())
            assert [row["loss"] for row in history] == [r.summary_metrics["loss"]]
            assert (base / r.id / "wandb-summary.json").is_file()  # the run's own files
