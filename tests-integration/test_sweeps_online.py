"""Sweeps against the loopback W&B server: ``wandb.sweep``, ``wandb.agent``, ``wandb.Api`` reads.

The real wandb 0.31.0 client talks to the project's own test server on 127.0.0.1 (whose sweep
controller is W&B's open-source engine); assertions read what the server recorded, through
``wandb.Api`` and the server's ``/_test`` API.
"""

from __future__ import annotations

import json
import os
from typing import Any

import flyte
import pytest
import wandb
from _plugin_helpers import run_local
from servers import WandbTestServer

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb_sweeps import (
    get_wandb_sweep_id,
    run_agent,
    run_agent_work,
    run_parallel_agents,
    wandb_sweep,
    wandb_sweep_config,
)

pytestmark = pytest.mark.online

env = flyte.TaskEnvironment(name="sweeps_online")
LOSS = {"name": "loss", "goal": "minimize"}


@wandb_init
def objective() -> None:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": run.config["lr"] * 10 + run.config.get("batch", 0) / 100})
    run.summary["sweep_seen"] = get_wandb_sweep_id()  # wandb.agent runs trials on its own thread


@env.task
def online_agent(work: str) -> str:
    return run_agent_work(work, objective)


@wandb_sweep
@env.task
def spec_pattern(count: int) -> str:
    # the specification's pattern, verbatim: plain wandb.agent on the sweep's id
    sweep_id = get_wandb_sweep_id()
    wandb.agent(sweep_id, function=objective, count=count)
    return str(sweep_id)


@wandb_sweep
@env.task
def one_call(count: int) -> str:
    assert run_agent(function=objective, count=count) is None  # server sweep: read it via Api
    return str(get_wandb_sweep_id())


@wandb_sweep
@env.task
async def parallel(agents: int, count: int) -> str:
    await run_parallel_agents(online_agent, agents, count)
    return str(get_wandb_sweep_id())


def _ctx(project: str, parameters: dict[str, Any], method: str = "grid") -> dict[str, str]:
    return {
        **wandb_config(project=project, entity="ent"),
        **wandb_sweep_config(method=method, metric=LOSS, parameters=parameters),
    }


def _sweep_runs(project: str, sweep_id: str) -> list[Any]:
    sweep = wandb.Api().sweep(f"ent/{project}/{sweep_id}")
    return list(sweep.runs)


def test_spec_pattern_wandb_sweep_and_plain_wandb_agent(wandb_online: WandbTestServer) -> None:
    ctx = _ctx("sw-spec", {"lr": {"values": [0.1, 0.2]}})
    sweep_id = run_local(spec_pattern, 2, custom_context=ctx)
    assert [s["name"] for s in wandb_online.sweeps() if s["project"] == "sw-spec"] == [sweep_id]
    runs = _sweep_runs("sw-spec", sweep_id)
    assert sorted(r.config["lr"] for r in runs) == [0.1, 0.2]
    for r in runs:
        assert r.state == "finished"
        assert r.sweep_name == sweep_id
        assert r.summary_metrics["loss"] == pytest.approx(r.config["lr"] * 10)
        assert r.summary_metrics["sweep_seen"] == sweep_id
    best = wandb.Api().sweep(f"ent/sw-spec/{sweep_id}").best_run()
    assert best.config["lr"] == 0.1


def test_the_task_prints_the_url_of_the_sweep_it_created(
    wandb_online: WandbTestServer, capfd: pytest.CaptureFixture[str]
) -> None:
    ctx = _ctx("sw-url", {"lr": {"values": [0.1]}})
    sweep_id = run_local(spec_pattern, 1, custom_context=ctx)
    url = wandb.Settings(
        entity="ent", project="sw-url", sweep_id=sweep_id, base_url=wandb_online.url
    ).sweep_url
    assert f"W&B sweep of this task: {url}\n" in capfd.readouterr().out
    # the sweep is really there, under that entity and project
    assert wandb.Api().sweep(f"ent/sw-url/{sweep_id}").id == sweep_id


def test_one_call_uses_wandb_agent_online(wandb_online: WandbTestServer) -> None:
    ctx = _ctx("sw-one", {"lr": {"values": [0.3, 0.4]}})
    sweep_id = run_local(one_call, 2, custom_context=ctx)
    runs = _sweep_runs("sw-one", sweep_id)
    assert sorted(r.config["lr"] for r in runs) == [0.3, 0.4]


def test_parallel_agents_online_pull_distinct_trials(wandb_online: WandbTestServer) -> None:
    grid = {"lr": {"values": [0.1, 0.2]}, "batch": {"values": [1, 2]}}
    sweep_id = run_local(parallel, 2, 4, custom_context=_ctx("sw-par", grid))
    runs = _sweep_runs("sw-par", sweep_id)
    assert sorted((r.config["lr"], r.config["batch"]) for r in runs) == [
        (0.1, 1), (0.1, 2), (0.2, 1), (0.2, 2),
    ]  # fmt: skip
    assert all(r.state == "finished" for r in runs)


def test_sweep_config_reaches_the_server_as_given(wandb_online: WandbTestServer) -> None:
    ctx = _ctx("sw-cfg", {"lr": {"values": [0.5]}})
    sweep_id = run_local(spec_pattern, 1, custom_context=ctx)
    sweep = wandb.Api().sweep(f"ent/sw-cfg/{sweep_id}")
    assert sweep.config["method"] == "grid"
    assert sweep.config["metric"] == LOSS
    assert sweep.config["parameters"] == {"lr": {"values": [0.5]}}
    assert json.dumps(sweep.config["parameters"])  # plain JSON, nothing coerced


@wandb_sweep(local_controller=True)
@env.task
def local_controller_online() -> str:
    return json.dumps(run_agent(function=objective))


def test_local_controller_on_request_logs_trials_to_the_server(
    wandb_online: WandbTestServer,
) -> None:
    ctx = _ctx("sw-localctl", {"lr": {"values": [0.1, 0.2, 0.3]}})
    out = json.loads(run_local(local_controller_online, custom_context=ctx))
    sweep_id = out["sweep_id"]
    assert [s for s in wandb_online.sweeps() if s["project"] == "sw-localctl"] == []
    runs = {r.id: r for r in wandb.Api().runs("ent/sw-localctl")}
    assert set(runs) == {t["run_id"] for t in out["trials"]}
    for t in out["trials"]:
        r = runs[t["run_id"]]
        assert r.group == sweep_id and sweep_id in r.tags
        assert r.config["lr"] == t["params"]["lr"]
        assert t["metric"] == pytest.approx(r.summary_metrics["loss"])
    assert out["best"]["params"] == {"lr": 0.1}


@wandb_sweep
@wandb_init
@env.task
def agent_under_a_live_run() -> str:
    run_agent(function=objective, count=1)
    return "unreachable"


def test_wandb_agent_under_an_open_run_is_refused_clearly(wandb_online: WandbTestServer) -> None:
    # wandb.agent restarts the client between trials, which would kill the task's own run
    ctx = _ctx("sw-live", {"lr": {"values": [0.1]}})
    with pytest.raises(Exception, match=r"cannot run wandb\.agent while the W&B run"):
        run_local(agent_under_a_live_run, custom_context=ctx)
    [task_run] = wandb_online.runs("ent", "sw-live")
    assert task_run["exitcode"] == 1  # the task's own run is recorded as failed, not lost


def test_host_from_the_context_reaches_the_client_and_leaves_no_variable(
    wandb_online: WandbTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server only through wandb_config(host=...): nothing in the environment before or after
    url = os.environ["WANDB_BASE_URL"]
    monkeypatch.delenv("WANDB_BASE_URL")
    ctx = {
        **wandb_config(project="sw-host", entity="ent", host=url),
        **wandb_sweep_config(method="grid", metric=LOSS, parameters={"lr": {"values": [0.1]}}),
    }
    sweep_id = run_local(spec_pattern, 1, custom_context=ctx)
    assert "WANDB_BASE_URL" not in os.environ
    assert [s["name"] for s in wandb_online.sweeps() if s["project"] == "sw-host"] == [sweep_id]
    [run] = list(wandb.Api(overrides={"base_url": url}).sweep(f"ent/sw-host/{sweep_id}").runs)
    assert run.state == "finished"
    assert run.config["lr"] == 0.1
