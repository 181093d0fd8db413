"""Sweeps with no W&B server: the local controller on real local Flyte runs, wandb offline.

Every assertion reads what W&B recorded in the trials' ``run-<id>.wandb`` files (or what the
sweep task returned, which the controller read from those files).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import flyte
import pytest
import wandb
from _plugin_helpers import recorded_links, records, run_local, user_rows

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb._records import RunRecord
from flyteplugins.wandb_sweeps import (
    SweepConfigError,
    get_wandb_sweep_id,
    run_agent,
    run_agent_work,
    run_parallel_agents,
    run_parallel_agents_sync,
    wandb_sweep,
    wandb_sweep_config,
)

env = flyte.TaskEnvironment(name="sweeps_offline")

GRID = {"lr": {"values": [0.01, 0.1]}, "batch": {"values": [16, 32]}}
LOSS = {"name": "loss", "goal": "minimize"}


@wandb_init
def objective() -> None:
    run = get_wandb_run()
    assert run is not None
    lr, batch = run.config["lr"], run.config["batch"]
    for step in range(3):
        run.log({"loss": (lr - 0.07) ** 2 + batch / 1000 + 0.001 * (3 - step)})


@wandb_init
def failing_objective() -> None:
    raise RuntimeError("diverged")


@env.task
def sweep_agent(work: str) -> str:
    return run_agent_work(work, objective)


@wandb_sweep
@env.task
def tune(count: int) -> str:
    sweep_id = get_wandb_sweep_id()
    assert sweep_id is not None
    result = run_agent(sweep_id, function=objective, count=count if count > 0 else None)
    return json.dumps(result)


@wandb_sweep
@env.task
def tune_failing() -> str:
    return json.dumps(run_agent(function=failing_objective, count=2))


@wandb_sweep
@env.task
async def tune_parallel(agents: int, count: int) -> str:
    result = await run_parallel_agents(sweep_agent, agents, count if count > 0 else None)
    return json.dumps(result)


@wandb_sweep
@env.task
def tune_parallel_sync(agents: int) -> str:
    return json.dumps(run_parallel_agents_sync(sweep_agent, agents))


@env.task
def child_sees_sweep() -> str:
    return str(get_wandb_sweep_id())


@wandb_sweep
@env.task
def child_of_sweep() -> str:
    return json.dumps([str(get_wandb_sweep_id()), child_sees_sweep()])


@wandb_sweep
@env.task
def nested_child_sweep() -> str:
    return str(get_wandb_sweep_id())


@wandb_sweep
@env.task
def parent_of_sweep_task() -> str:
    return json.dumps([str(get_wandb_sweep_id()), nested_child_sweep()])


@wandb_sweep(method="grid", parameters={"lr": {"values": [0.01, 0.1]}}, download_logs=True)
@env.task
def tune_and_download() -> str:
    return json.dumps(run_agent(function=objective_lr_only))


@wandb_sweep(method="grid", parameters={"lr": {"values": [0.01, 0.1]}}, download_logs=True)
@env.task
async def tune_and_download_async() -> str:
    return json.dumps(run_agent(function=objective_lr_only))


@wandb_init
def objective_lr_only() -> None:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": run.config["lr"]})


# the specification's sweep example, as written there (wandb.agent, wandb.log, run.config)
@wandb_init
def spec_objective() -> None:
    run = get_wandb_run()
    assert run is not None
    config = run.config
    loss = (config.lr - 0.07) ** 2 + config.batch / 1000
    wandb.log({"loss": loss, "accuracy": 1 - loss})


@wandb_sweep
@env.task
def run_sweep(count: int) -> str:
    sweep_id = get_wandb_sweep_id()
    wandb.agent(sweep_id, function=spec_objective, count=count)
    return json.dumps({"sweep_id": sweep_id, "replaced": hasattr(wandb.agent, "__wrapped__")})


@wandb_sweep
@env.task
def agent_on_unknown_sweep() -> str:
    wandb.agent("entity/project/nosuch", function=spec_objective, count=1)
    return "ran"


def bare_objective() -> None:
    # no @wandb_init: the trial's run is started around it; wandb.init() returns that run
    run = wandb.init()
    wandb.log({"loss": wandb.config["lr"]})
    assert run.id == wandb.run.id


@wandb_sweep
@env.task
def tune_bare() -> str:
    return json.dumps(run_agent(function=bare_objective))


def _ctx(method: str, parameters: dict[str, Any], **kw: Any) -> dict[str, str]:
    return {
        **wandb_config(project="sweeps-offline"),
        **wandb_sweep_config(method=method, metric=LOSS, parameters=parameters, **kw),
    }


def _trials(root: Path, sweep_id: str) -> list[RunRecord]:
    return [r for r in records(root) if r.group == sweep_id]


def _params(rec: RunRecord, names: tuple[str, ...] = ("lr", "batch")) -> tuple[Any, ...]:
    return tuple(rec.config[n] for n in names)


# ----------------------------------------------------------------------------- in-process agent


def test_grid_2x2_runs_exactly_four_distinct_trials_then_stops(wandb_offline: Path) -> None:
    out = json.loads(run_local(tune, 0, custom_context=_ctx("grid", GRID)))
    sweep_id = out["sweep_id"]
    recs = _trials(wandb_offline, sweep_id)
    assert len(recs) == 4
    assert sorted(_params(r) for r in recs) == sorted(
        (lr, b) for lr in (0.01, 0.1) for b in (16, 32)
    )
    assert len({r.run_id for r in recs}) == 4
    for rec in recs:
        assert rec.exit_code == 0
        assert rec.tags == [sweep_id]
        assert rec.project == "sweeps-offline"
        assert len(rec.metric("loss")) == 3
    # the controller scored each trial from what W&B recorded, and reports the best one
    assert [t["state"] for t in out["trials"]] == ["finished"] * 4
    best = out["best"]
    assert best["params"] == {"batch": 16, "lr": 0.1}
    by_run = {r.run_id: r for r in recs}
    assert best["metric"] == pytest.approx(min(by_run[best["run_id"]].metric("loss")))


def test_count_caps_a_grid(wandb_offline: Path) -> None:
    out = json.loads(run_local(tune, 3, custom_context=_ctx("grid", GRID)))
    assert len(_trials(wandb_offline, out["sweep_id"])) == 3


def test_random_with_a_fixed_count(wandb_offline: Path) -> None:
    params = {"lr": {"min": 0.0, "max": 0.2}, "batch": {"values": [16, 32, 64]}}
    out = json.loads(run_local(tune, 5, custom_context=_ctx("random", params)))
    recs = _trials(wandb_offline, out["sweep_id"])
    assert len(recs) == 5
    for rec in recs:
        assert 0.0 <= rec.config["lr"] <= 0.2
        assert rec.config["batch"] in (16, 32, 64)
        assert rec.exit_code == 0


def test_bayes_with_a_fixed_count_is_driven_by_the_recorded_metric(wandb_offline: Path) -> None:
    params = {"lr": {"min": 0.0, "max": 0.3}, "batch": {"values": [16, 32]}}
    out = json.loads(run_local(tune, 8, custom_context=_ctx("bayes", params)))
    recs = _trials(wandb_offline, out["sweep_id"])
    assert len(recs) == 8
    scored = {t["run_id"]: t["metric"] for t in out["trials"]}
    for rec in recs:
        assert scored[rec.run_id] == pytest.approx(min(rec.metric("loss")))
    assert out["best"]["metric"] == min(scored.values())


def test_prior_runs_seed_the_local_controller(wandb_offline: Path) -> None:
    first = json.loads(run_local(tune, 1, custom_context=_ctx("grid", GRID)))
    [prior] = first["trials"]
    ctx = _ctx("grid", GRID, prior_runs=[prior["run_id"]])
    second = json.loads(run_local(tune, 0, custom_context=ctx))
    ran = [t for t in second["trials"] if t["run_id"] != prior["run_id"]]
    assert len(ran) == 3  # the prior run's grid point is not run again
    assert prior["params"] not in [t["params"] for t in ran]
    assert {t["run_id"] for t in second["trials"]} >= {prior["run_id"]}
    assert len(_trials(wandb_offline, second["sweep_id"])) == 3


def test_random_without_count_is_refused(wandb_offline: Path) -> None:
    with pytest.raises(Exception, match="never runs out of trials"):
        run_local(tune, 0, custom_context=_ctx("random", {"lr": {"min": 0.0, "max": 1.0}}))


def test_failed_trials_are_recorded_as_failed_and_fail_the_sweep(wandb_offline: Path) -> None:
    ctx = _ctx("grid", {"lr": {"values": [1, 2, 3]}})
    with pytest.raises(Exception, match="diverged") as raised:
        run_local(tune_failing, custom_context=ctx)
    recs = records(wandb_offline)
    assert len(recs) == 2
    assert all(r.exit_code == 1 for r in recs)
    # the full traceback, in the error and in each trial's W&B run
    assert "Traceback (most recent call last)" in str(raised.value)
    assert "in failing_objective" in str(raised.value)
    for rec in recs:
        text = rec.summary["traceback"]
        assert text.startswith("Traceback (most recent call last)")
        assert "in failing_objective" in text
        assert text.rstrip().endswith("RuntimeError: diverged")


def test_a_failed_trial_keeps_its_full_traceback_in_the_result(wandb_offline: Path) -> None:
    from flyteplugins.wandb_sweeps import create_local_sweep, run_trial

    with create_local_sweep({"method": "grid", "parameters": {"lr": {"value": 1}}}) as sweep:
        [trial] = sweep.propose(1)
        out = run_trial(
            failing_objective, sweep_id=sweep.sweep_id, run_id=trial.run_id, params=trial.params
        )
    assert out["state"] == "failed"
    lines = out["error"].splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: diverged"
    assert any("in failing_objective" in line for line in lines)
    [rec] = records(wandb_offline)
    assert rec.summary["traceback"] == out["error"]


def test_invalid_sweep_config_fails_before_any_trial(wandb_offline: Path) -> None:
    bad = {
        **wandb_config(project="p"),
        # a continuous parameter cannot be enumerated by a grid
        "wandb_sweep/method": '"grid"',
        "wandb_sweep/parameters": json.dumps({"lr": {"min": 0.0, "max": 1.0}}),
    }
    with pytest.raises(Exception, match="cannot be enumerated by a grid"):
        run_local(tune, 0, custom_context=bad)
    assert records(wandb_offline) == []
    with pytest.raises(SweepConfigError, match="unknown sweep method 'grdi'"):
        wandb_sweep_config(method="grdi")


def test_a_missing_sweep_config_is_refused_before_anything_runs(wandb_offline: Path) -> None:
    with pytest.raises(Exception, match="no sweep configuration was given"):
        run_local(tune, 0, custom_context=wandb_config(project="p"))
    assert records(wandb_offline) == []


# ----------------------------------------------------------------------------- parallel agents


@pytest.mark.parametrize("agents", [2, 4])
def test_parallel_agents_run_distinct_grid_trials_all_recorded(
    wandb_offline: Path, agents: int
) -> None:
    grid = {"lr": {"values": [0.01, 0.05, 0.1]}, "batch": {"values": [16, 32, 64]}}
    out = json.loads(run_local(tune_parallel, agents, 0, custom_context=_ctx("grid", grid)))
    recs = _trials(wandb_offline, out["sweep_id"])
    assert len(recs) == 9
    assert len({_params(r) for r in recs}) == 9  # no configuration ran twice
    assert {r.run_id for r in recs} == {t["run_id"] for t in out["trials"]}
    assert all(r.exit_code == 0 for r in recs)
    assert all(t["state"] == "finished" for t in out["trials"])
    # trials ran in separate Flyte child actions (the action name is in each run's config)
    actions = {r.config["flyte"]["action_name"] for r in recs}
    assert len(actions) == agents


@pytest.mark.parametrize("agents", [2, 4])
def test_parallel_bayes_agents_propose_in_rounds(wandb_offline: Path, agents: int) -> None:
    params = {"lr": {"min": 0.0, "max": 0.3}, "batch": {"values": [16, 32]}}
    out = json.loads(
        run_local(tune_parallel, agents, 2 * agents, custom_context=_ctx("bayes", params))
    )
    recs = _trials(wandb_offline, out["sweep_id"])
    assert len(recs) == 2 * agents
    assert len({r.run_id for r in recs}) == 2 * agents
    assert len({_params(r) for r in recs}) == 2 * agents
    assert all(t["state"] == "finished" and t["metric"] is not None for t in out["trials"])


def test_parallel_agents_from_a_sync_task(wandb_offline: Path) -> None:
    out = json.loads(run_local(tune_parallel_sync, 3, custom_context=_ctx("grid", GRID)))
    recs = _trials(wandb_offline, out["sweep_id"])
    assert sorted(_params(r) for r in recs) == sorted(
        (lr, b) for lr in (0.01, 0.1) for b in (16, 32)
    )


def test_more_than_twenty_agents_is_refused_before_any_starts(wandb_offline: Path) -> None:
    with pytest.raises(Exception, match="1 to 20 agents"):
        run_local(tune_parallel, 21, 0, custom_context=_ctx("grid", GRID))
    assert records(wandb_offline) == []


# ----------------------------------------------------------------------------- sweep reuse, logs


def test_child_tasks_reuse_the_sweep(wandb_offline: Path) -> None:
    ctx = _ctx("grid", GRID)
    own, child = json.loads(run_local(child_of_sweep, custom_context=ctx))
    assert own == child != "None"
    outer, inner = json.loads(run_local(parent_of_sweep_task, custom_context=ctx))
    assert outer == inner != "None"


@pytest.mark.parametrize("task", [tune_and_download, tune_and_download_async])
def test_download_logs_packages_every_offline_trial(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch, task: Any
) -> None:
    # the download's default folder is under the temporary folder: keep it inside this test's
    monkeypatch.setattr(tempfile, "tempdir", str(wandb_offline / "tmp"))
    (wandb_offline / "tmp").mkdir()
    out = json.loads(run_local(task, custom_context=wandb_config(project="dl")))
    sweep_id = out["sweep_id"]
    root = wandb_offline / "tmp" / "wandb_runs" / f"wandb-sweep-{sweep_id}"
    info = json.loads((root / "sweep.json").read_text())
    assert info["sweep_id"] == sweep_id
    for trial in out["trials"]:
        run_dir = root / "runs" / trial["run_id"]
        rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
        assert [r["loss"] for r in rows] == [trial["params"]["lr"]]
        assert json.loads((run_dir / "summary.json").read_text())["loss"] == trial["params"]["lr"]
        assert (run_dir / f"run-{trial['run_id']}.wandb").is_file()
    report = json.loads((root / "download.json").read_text())
    assert report["failed"] == {}


# ----------------------------------------------------------------------------- wandb.agent


def test_the_specifications_wandb_agent_example_runs_offline(wandb_offline: Path) -> None:
    client_agent = wandb.agent
    out = json.loads(run_local(run_sweep, 3, custom_context=_ctx("grid", GRID)))
    sweep_id = out["sweep_id"]
    recs = _trials(wandb_offline, sweep_id)
    assert len(recs) == 3
    assert len({_params(r) for r in recs}) == 3  # three distinct grid points
    for rec in recs:
        assert rec.exit_code == 0
        assert rec.tags == [sweep_id]
        loss = (rec.config["lr"] - 0.07) ** 2 + rec.config["batch"] / 1000
        assert rec.metric("loss") == [pytest.approx(loss)]
        assert rec.metric("accuracy") == [pytest.approx(1 - loss)]
    # wandb.agent was ours only while the sweep task ran
    assert out["replaced"] is True
    assert wandb.agent is client_agent
    from flyteplugins.wandb_sweeps._controller import lookup

    assert lookup(sweep_id) is None  # the local sweep lived as long as its task


def test_wandb_agent_on_a_sweep_it_cannot_run_fails_at_once_naming_run_agent(
    wandb_offline: Path,
) -> None:
    with pytest.raises(Exception, match=r"run_agent.*\[local\]") as raised:
        run_local(agent_on_unknown_sweep, custom_context=_ctx("grid", GRID))
    assert "W&B is offline" in str(raised.value)
    assert records(wandb_offline) == []
    assert not hasattr(wandb.agent, "__wrapped__")  # the client's own again


_NO_ENGINE = """
import sys, time
sys.modules["sweeps"] = None  # as if the [local] extra were not installed
sys.path.insert(0, sys.argv[1])
import flyte
import test_sweeps_offline as t
flyte.init()
start = time.monotonic()
try:
    flyte.with_runcontext(mode="local", custom_context=t._ctx("grid", t.GRID)).run(t.run_sweep, 2)
except Exception as exc:
    print(round(time.monotonic() - start, 3), repr(str(exc)))
"""


def test_without_the_engine_wandb_agent_fails_naming_run_agent_and_the_extra(
    wandb_offline: Path,
) -> None:
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run(
        [sys.executable, "-c", _NO_ENGINE, here],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.strip()
    assert out, "the sweep task did not fail"
    message = out.split(" ", 1)[1]
    assert "run_agent" in message
    assert "wandb.agent" in message
    assert "flyteplugins-wandb-sweeps[local]" in message
    assert records(wandb_offline) == []


def test_an_objective_without_wandb_init_gets_the_trials_run(wandb_offline: Path) -> None:
    ctx = _ctx("grid", {"lr": {"values": [0.1, 0.2]}})
    out = json.loads(run_local(tune_bare, custom_context=ctx))
    recs = {r.run_id: r for r in _trials(wandb_offline, out["sweep_id"])}
    assert set(recs) == {t["run_id"] for t in out["trials"]}
    for trial in out["trials"]:
        rec = recs[trial["run_id"]]
        assert rec.metric("loss") == [trial["params"]["lr"]] == [rec.config["lr"]]
        assert trial["state"] == "finished"
        assert trial["metric"] == trial["params"]["lr"]


# ----------------------------------------------------------------------------- isolated trials

GRID6 = {"lr": {"values": [0.01, 0.05, 0.1]}, "batch": {"values": [16, 32]}}
STEPS = 4


def _globals_loss(lr: float, batch: int, step: int) -> float:
    return (lr - 0.07) ** 2 + batch / 1000 + 0.001 * (STEPS - step)


@wandb_init
def globals_objective() -> None:
    # the specification's style: hyperparameters from wandb.config, metrics through wandb.log
    lr, batch = wandb.config.lr, wandb.config["batch"]
    for step in range(STEPS):
        # what this trial reads stays its own for as long as it runs
        wandb.log(
            {
                "loss": _globals_loss(lr, batch, step),
                "lr_seen": wandb.config.lr,
                "batch_seen": wandb.config.batch,
                "run_seen": wandb.run.id,
            }
        )


@env.task
def globals_agent(work: str) -> str:
    return run_agent_work(work, globals_objective)


@wandb_sweep
@env.task
async def tune_globals_parallel(agents: int, count: int) -> str:
    return json.dumps(await run_parallel_agents(globals_agent, agents, count))


@wandb_sweep
@env.task
def tune_globals(count: int) -> str:
    return json.dumps(run_agent(function=globals_objective, count=count))


@env.task
async def two_sweeps_at_once(count: int) -> list[str]:
    # two sweep tasks on threads of this process, their trials running at the same time
    return list(await asyncio.gather(tune_globals.aio(count), tune_globals.aio(count)))


def _assert_clean(root: Path, out: dict[str, Any]) -> None:
    """Every trial recorded only its own rows, read only its own parameters; best is right."""
    recs = {r.run_id: r for r in _trials(root, out["sweep_id"])}
    assert set(recs) == {t["run_id"] for t in out["trials"]}
    for trial in out["trials"]:
        rec = recs[trial["run_id"]]
        lr, batch = trial["params"]["lr"], trial["params"]["batch"]
        assert {k: v for k, v in rec.config.items() if k != "flyte"} == {"lr": lr, "batch": batch}
        assert user_rows(rec) == [
            {
                "loss": pytest.approx(_globals_loss(lr, batch, step)),
                "lr_seen": lr,
                "batch_seen": batch,
                "run_seen": rec.run_id,
            }
            for step in range(STEPS)
        ]
        assert trial["state"] == "finished"
        assert trial["metric"] == pytest.approx(min(rec.metric("loss")))
    best = min(out["trials"], key=lambda t: min(recs[t["run_id"]].metric("loss")))
    assert out["best"]["run_id"] == best["run_id"]


def test_parallel_local_agents_keep_every_trial_clean(wandb_offline: Path) -> None:
    out = json.loads(run_local(tune_globals_parallel, 3, 6, custom_context=_ctx("grid", GRID6)))
    assert len(out["trials"]) == 6
    assert len({canonical_params(t) for t in out["trials"]}) == 6
    _assert_clean(wandb_offline, out)
    assert out["best"]["params"] == {"lr": 0.05, "batch": 16}
    # three agents, each in its own Flyte child action
    actions = {r.config["flyte"]["action_name"] for r in _trials(wandb_offline, out["sweep_id"])}
    assert len(actions) == 3


def test_concurrent_sweeps_in_one_process_keep_every_trial_clean(wandb_offline: Path) -> None:
    outs = [
        json.loads(o) for o in run_local(two_sweeps_at_once, 3, custom_context=_ctx("grid", GRID6))
    ]
    assert outs[0]["sweep_id"] != outs[1]["sweep_id"]
    for out in outs:
        assert len(out["trials"]) == 3
        _assert_clean(wandb_offline, out)


def canonical_params(trial: dict[str, Any]) -> str:
    return json.dumps(trial["params"], sort_keys=True)


# ----------------------------------------------------------------------------- local processes


@wandb_init
def pid_objective() -> None:
    wandb.log({"loss": wandb.config.lr, "pid": os.getpid()})


@env.task
def pid_agent(work: str) -> str:
    return run_agent_work(work, pid_objective)


@wandb_sweep
@env.task
async def tune_pids(agents: int) -> str:
    return json.dumps(await run_parallel_agents(pid_agent, agents))


def test_local_agents_run_in_worker_processes_one_per_agent(wandb_offline: Path) -> None:
    grid = {"lr": {"values": [0.1, 0.2, 0.3, 0.4]}}
    out = json.loads(run_local(tune_pids, 2, custom_context=_ctx("grid", grid)))
    recs = _trials(wandb_offline, out["sweep_id"])
    pids = {r.history[0]["pid"] for r in recs}
    assert len(recs) == 4
    assert len(pids) == 2 and os.getpid() not in pids
    # each agent's two trials (the grid is handed out at once) ran in its own process
    per_pid = [sum(r.history[0]["pid"] == pid for r in recs) for pid in pids]
    assert per_pid == [2, 2]


_SIDE_EFFECTS = """
import json, shutil
from pathlib import Path

import flyte
from flyteplugins.wandb import get_wandb_run, wandb_init
from flyteplugins.wandb_sweeps import (
    run_agent_work, run_parallel_agents, wandb_sweep, wandb_sweep_config,
)

DATA = Path(__file__).resolve().parent / "data"
shutil.rmtree(DATA, ignore_errors=True)  # top-level code with a side effect
DATA.mkdir(exist_ok=True)  # two workers run it at once
env = flyte.TaskEnvironment(name="side_effects")


@wandb_init
def objective() -> None:
    run = get_wandb_run()
    run.log({"loss": float((DATA / "scale.txt").read_text()) * run.config["lr"]})


@env.task
def agent(work: str) -> str:
    return run_agent_work(work, objective)


@wandb_sweep
@env.task
async def tune() -> str:
    (DATA / "scale.txt").write_text("2")
    return json.dumps(await run_parallel_agents(agent, 2))


if __name__ == "__main__":
    flyte.init()
    ctx = wandb_sweep_config(
        method="grid", metric={"name": "loss", "goal": "minimize"},
        parameters={"lr": {"values": [0.1, 0.2]}},
    )
    try:
        flyte.with_runcontext(mode="local", custom_context=dict(ctx)).run(tune)
    except Exception as exc:
        print("FAILED:", exc)
"""


def test_a_scripts_top_level_side_effects_in_a_worker_are_explained(wandb_offline: Path) -> None:
    # issue 22: the worker imports the script again, its top-level code removes the data the
    # task prepared, and the trial failed with a bare FileNotFoundError
    script = wandb_offline / "side_effects.py"
    script.write_text(_SIDE_EFFECTS)
    out = subprocess.run(
        [sys.executable, str(script)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "FAILED:" in out and "FileNotFoundError" in out
    assert str(script) in out
    assert "top-level code ran again in the worker" in out
    assert 'if __name__ == "__main__":' in out


@env.task
def lambda_agent(work: str) -> str:
    return run_agent_work(work, lambda: None)


@wandb_sweep
@env.task
async def tune_lambda() -> str:
    return json.dumps(await run_parallel_agents(lambda_agent, 2))


def test_an_objective_workers_cannot_import_is_named(wandb_offline: Path) -> None:
    with pytest.raises(Exception, match=r"every agent task failed") as raised:
        run_local(tune_lambda, custom_context=_ctx("grid", GRID))
    message = str(raised.value)
    assert "<lambda>" in message and "it is a lambda" in message
    assert "module-level function" in message
    assert records(wandb_offline) == []


# ----------------------------------------------------------------------------- retries resume

_resume_attempts: list[str] = []


@wandb_sweep
@env.task(retries=1)
def resumable() -> str:
    _resume_attempts.append(str(get_wandb_sweep_id()))
    run_agent(function=objective, count=2)
    if len(_resume_attempts) == 1:
        raise RuntimeError("the first attempt fails after two trials")
    return json.dumps(run_agent(function=objective))


def test_a_retried_sweep_task_resumes_its_local_sweep(wandb_offline: Path) -> None:
    _resume_attempts.clear()
    out = json.loads(run_local(resumable, custom_context=_ctx("grid", GRID)))
    first, second = _resume_attempts  # one failed attempt, one retry
    assert first == second == out["sweep_id"]
    recs = _trials(wandb_offline, out["sweep_id"])
    # every grid point ran once: the retry did not repeat the two finished trials
    assert sorted(_params(r) for r in recs) == sorted(
        (lr, b) for lr in (0.01, 0.1) for b in (16, 32)
    )
    assert {r.run_id for r in recs} == {t["run_id"] for t in out["trials"]}
    assert all(r.exit_code == 0 for r in recs)
    assert [t["state"] for t in out["trials"]] == ["finished"] * 4
    assert out["best"]["params"] == {"batch": 16, "lr": 0.1}


# ----------------------------------------------------------------------------- links


@wandb_sweep
@env.task
async def linked_sweep() -> str:
    return json.dumps(run_agent(function=objective_lr_only))


@env.task
async def parent_of_linked_sweep() -> str:
    return await linked_sweep.aio()


def test_the_link_flyte_renders_is_the_local_sweeps_url(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(wandb_offline))  # flyte's local run database goes here
    for var in ("WANDB_ENTITY", "WANDB_PROJECT", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    ctx = {
        **wandb_config(project="proj", entity="team"),
        **wandb_sweep_config(method="grid", metric=LOSS, parameters={"lr": {"values": [0.2]}}),
    }
    wandb.teardown()
    flyte.init(local_persistence=True)
    try:
        run = flyte.with_runcontext(mode="local", custom_context=ctx).run(parent_of_linked_sweep)
        out = json.loads(run.outputs()[0])
    finally:
        flyte.init()
    links = recorded_links()
    expected = wandb.Settings(entity="team", project="proj", sweep_id=out["sweep_id"]).sweep_url
    assert expected in links
    [trial] = _trials(wandb_offline, out["sweep_id"])
    assert trial.group == out["sweep_id"]
