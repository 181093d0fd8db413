"""``run_mode="shared"`` online: every rank of a real torchrun job writes to one run on a server.

The workers talk to a W&B-compatible test server on 127.0.0.1 of their own (the session's
``conftest.online_1x2`` job: Flyte's clustered ``TorchRun`` task, one process per rank running
every case in turn), which keeps each writer of a shared run apart and records the run's final
state. Checked: one run per table row, every rank's rows in it, one writer per rank, the run
finished (or failed when a secondary failed: the primary waits for the secondaries' exit codes).
Restarts resuming runs online are proven by test_rewind_sync.py's Elastic restart (offline: by
test_distributed_failures.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _distributed_expect import (
    PROJECT,
    STEPS,
    OnlineJob,
    dump,
    expected,
)
from servers import OpenWandbServer, WandbTestServer, client_env
from torchrun_harness import Case, LaunchResult, launch_torchrun

pytestmark = [pytest.mark.online, pytest.mark.timeout(900)]


def _check(runs: Any, job: LaunchResult, name: str, scope: str, nnodes: int) -> None:
    """``runs(run_id)``: the server's record of a run."""
    results = job.case(name)
    assert len(results) == 2 * nnodes and all(r["ok"] for r in results), dump(results)
    base = f"{results[0]['run_name']}-a0"
    want = expected("shared", scope, base, nnodes, 2)
    for run_id in sorted({e.run_id for e in want.values() if e.run_id}):
        writers = sorted(r for r, e in want.items() if e.run_id == run_id)
        rec = runs(run_id)
        assert rec["state"] == "finished", dump(rec)
        assert rec["exitcode"] == 0
        assert rec["writers"] == len(writers), dump(rec)
        rows: dict[int, list[int]] = {}
        for row in rec["history"]:
            rows.setdefault(int(row["rank"]), []).append(int(row["step_i"]))
        assert {r: sorted(v) for r, v in rows.items()} == {
            r: list(range(STEPS)) for r in writers
        }, dump(rec["history"])


@pytest.mark.parametrize("scope", ["global", "worker"])
def test_all_ranks_write_one_shared_run(online_1x2: OnlineJob, scope: str) -> None:
    _check(online_1x2.run, online_1x2.job, f"shared_{scope}", scope, nnodes=1)


def test_a_failed_secondary_fails_the_shared_run_online(online_1x2: OnlineJob) -> None:
    results = {r["rank"]: r for r in online_1x2.job.case("shared_fails")}
    assert results[1]["ok"] is False and results[0]["ok"] is True, dump(results)
    rec = online_1x2.run(f"{results[0]['run_name']}-a0")
    assert rec["state"] == "failed", dump(rec)
    assert rec["exitcode"] != 0
    ranks = sorted({int(row["rank"]) for row in rec["history"]})
    assert ranks == [0, 1]


@pytest.fixture(scope="module")
def online_2x2(
    wandb_server: WandbTestServer, tmp_path_factory: pytest.TempPathFactory
) -> LaunchResult:
    root = tmp_path_factory.mktemp("torchrun-online-2x2")
    scopes = ("global", "worker")
    cases = [Case(name=f"shared_{s}", run_mode="shared", rank_scope=s) for s in scopes]
    return launch_torchrun(
        root, cases, nnodes=2, nproc_per_node=2, run_prefix="on2", project=PROJECT,
        env=client_env(wandb_server.url, root / "home"),
    )  # fmt: skip


def _server_run(server: WandbTestServer, run_id: str) -> dict[str, Any]:
    (found,) = [r for r in server.runs(project=PROJECT) if r["name"] == run_id]
    return server.run(found["entity"], PROJECT, run_id)


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["global", "worker"])
def test_two_nodes_share_runs_online(
    wandb_server: WandbTestServer, online_2x2: LaunchResult, scope: str
) -> None:
    _check(lambda rid: _server_run(wandb_server, rid), online_2x2, f"shared_{scope}", scope, 2)


@pytest.mark.slow
def test_shared_run_on_openwandb(openwandb_server: OpenWandbServer, tmp_path: Path) -> None:
    """A second, independent server implementation of multi-process shared mode."""
    case = Case(name="shared_global", run_mode="shared", rank_scope="global")
    env = client_env(openwandb_server.url, tmp_path / "home")
    job = launch_torchrun(
        tmp_path, [case], nnodes=1, nproc_per_node=2, run_prefix="ow", project=PROJECT, env=env
    )
    results = job.case(case.name)
    assert len(results) == 2 and all(r["ok"] for r in results), dump(results)
    metrics = openwandb_server.metrics(f"{results[0]['run_name']}-a0")
    ranks = sorted(int(m["value"]) for m in metrics["metrics_by_key"]["rank"])
    assert ranks == [0] * STEPS + [1] * STEPS, dump(metrics)
