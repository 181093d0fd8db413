"""The plan script's table equals what the plugin really does, one test per run_mode and shape.

* Distributed: the session's real ``torchrun`` job of 2 nodes x 2 processes (two ``torchrun``
  launches on one rendezvous, see ``torchrun_harness.py``; ``conftest.torchrun_offline_2x2``,
  which runs every pair and which test_distributed_clustered.py checks against the spec's
  tables): its worker-scope case of each run_mode. Every rank's evidence (its run, its group)
  and every run file W&B wrote are compared with the rows of
  ``flyteplugins-wandb-plan --nnodes 2 --nproc-per-node 2``.
* Plain: a real local Flyte run of a parent task calling a child task with that run_mode; the
  parent's and the child's rows (``--plain``, with ``--parent-id --parent-in-process`` for the
  child) are compared with the runs the tasks got and the run files W&B wrote.

The CLI runs as a real process: the console script installed next to this interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import flyte
import pytest
from _distributed_expect import (
    MODES,
    case_name,
    dump,
    labels_of,
    records_by_id,
    wrote_metadata,
)
from _plugin_helpers import by_id, run_local
from torchrun_harness import LaunchResult

from flyteplugins.wandb import get_wandb_run, wandb_init

pytestmark = pytest.mark.timeout(900)

SCRIPT = Path(sys.executable).with_name("flyteplugins-wandb-plan")
SCOPE = "worker"  # on 2 nodes every mode differs between the scopes; worker is the richer one


def plan_rows(*args: str) -> list[dict[str, str]]:
    """The table ``flyteplugins-wandb-plan ARGS`` prints, one dict per row."""
    out = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n\n", 1)[0].splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=True)) for line in lines[2:]]


def _dash(value: str | None) -> str:
    return value or "-"


# ----------------------------------------------------------------------------- distributed


@pytest.mark.parametrize("mode", MODES)
def test_cli_matches_a_real_torchrun_job(torchrun_offline_2x2: LaunchResult, mode: str) -> None:
    job = torchrun_offline_2x2
    results = job.case(case_name(mode, SCOPE))
    logs = "\n".join(Path(p).read_text(errors="replace")[-3000:] for p in job.logs)
    assert job.returncodes == [0, 0], logs
    assert len(results) == 4 and all(r["ok"] for r in results), dump(results)
    base = f"{results[0]['run_name']}-a0"
    rows = plan_rows(
        "--nnodes", "2", "--nproc-per-node", "2", "--run-mode", mode, "--rank-scope", SCOPE,
        "--base", base,
    )  # fmt: skip
    evidence = {e["rank"]: e for e in job.evidence(case_name(mode, SCOPE))}
    assert sorted(evidence) == [0, 1, 2, 3] == [int(r["rank"]) for r in rows], dump(evidence)

    for row in rows:  # every rank got the run and group its row shows
        ev = evidence[int(row["rank"])]
        assert int(row["worker"]) == ev["info"]["worker_index"], (row, dump(ev))
        assert int(row["local_rank"]) == ev["info"]["local_rank"], (row, dump(ev))
        assert (row["initialises"] == "yes") == ev["has_run"], (row, dump(ev))
        assert _dash(ev["run_id"]) == (row["run id"] if ev["has_run"] else "-"), (row, dump(ev))
        if ev["has_run"]:
            assert _dash(ev["group"]) == row["group"], (row, dump(ev))

    # W&B recorded exactly the table's runs: one file per writer, the shared-mode labels, and
    # the run's metadata from its primary only.
    recorded = {
        rid: recs for rid, recs in records_by_id(job.out).items() if rid.startswith(base + "-")
    }
    writers: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row["initialises"] == "yes":
            writers.setdefault(row["run id"], []).append(row)
    assert sorted(recorded) == sorted(writers), sorted(recorded)
    for rid, recs in recorded.items():
        assert len(recs) == len(writers[rid]), rid
        assert {_dash(r.group) for r in recs} == {w["group"] for w in writers[rid]}, rid
        roles = [w["role"].split(" ", 1) for w in writers[rid]]
        if mode == "shared":
            assert set().union(*(labels_of(r) for r in recs)) == {
                label.strip("()") for _, label in roles
            }, rid
            primaries = sum(role == "primary" for role, _ in roles)
            assert sum(wrote_metadata(r) for r in recs) == primaries == 1, rid
        else:
            assert [role for role, *_ in roles] == ["owner"], rid


# ----------------------------------------------------------------------------- plain tasks

env = flyte.TaskEnvironment(name="cli_runtime")


def _seen() -> dict[str, str]:
    """The run this task got ("" for no group): Flyte cannot carry a None in a dict output."""
    run = get_wandb_run()
    assert run is not None
    run.log({"x": 1})
    return {"id": str(run.id), "group": run.group or "", "action": flyte.ctx().action.name}


@wandb_init(run_mode="auto")
@env.task
async def child_auto() -> dict[str, str]:
    return _seen()


@wandb_init(run_mode="new")
@env.task
async def child_new() -> dict[str, str]:
    return _seen()


@wandb_init(run_mode="shared")
@env.task
async def child_shared() -> dict[str, str]:
    return _seen()


CHILDREN = {"auto": child_auto, "new": child_new, "shared": child_shared}


@wandb_init
@env.task
async def parent(mode: str) -> list[dict[str, str]]:
    return [_seen(), await CHILDREN[mode]()]


@pytest.mark.parametrize("mode", MODES)
def test_cli_matches_real_plain_tasks(wandb_offline: Path, mode: str) -> None:
    run_name = f"cli-plain-{mode}"
    mine, child = run_local(parent, mode, name=run_name)
    [top] = plan_rows("--plain", "--base", f"{run_name}-{mine['action']}")
    [row] = plan_rows(
        "--run-mode", mode, "--base", f"{run_name}-{child['action']}",
        "--parent-id", mine["id"], "--parent-in-process",
    )  # fmt: skip
    assert (top["role"], top["run id"], top["group"]) == ("owner", mine["id"], _dash(mine["group"]))
    assert row["run id"] == child["id"] and row["group"] == _dash(child["group"]), (row, child)
    assert row["role"] == ("owner" if mode == "new" else "reuse"), row

    recorded = by_id(wandb_offline)
    owners = {r["run id"] for r in (top, row) if r["initialises"] == "yes"}
    assert sorted(recorded) == sorted(owners), sorted(recorded)
    assert all(len(recs) == 1 and recs[0].group is None for recs in recorded.values())
