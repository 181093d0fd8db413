"""``run_mode="shared"`` online: every rank of a real Elastic job writes to one run on a server.

The workers talk to the project's own W&B-compatible test server on 127.0.0.1 (fixtures in
``conftest.py``), which keeps each writer of a shared run apart and records the run's final state.
Checked: one run per table row, every rank's rows in it, one writer per rank, the run finished
(or failed when a secondary failed: the primary waits for the secondaries' exit codes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _distributed_expect import PROJECT, STEPS, dump, expected
from servers import OpenWandbServer, WandbTestServer, client_env
from torchrun_harness import Case, LaunchResult, launch

pytestmark = [pytest.mark.online, pytest.mark.timeout(900)]


def _launch(
    server: WandbTestServer, root: Path, cases: list[Case], nnodes: int, prefix: str
) -> LaunchResult:
    env = client_env(server.url, root / "home")
    return launch(root, cases, nnodes=nnodes, nproc_per_node=2, run_prefix=prefix, env=env)


def _server_run(server: WandbTestServer, run_id: str) -> dict[str, Any]:
    (found,) = [r for r in server.runs(project=PROJECT) if r["name"] == run_id]
    return server.run(found["entity"], PROJECT, run_id)


def _check(server: WandbTestServer, job: LaunchResult, name: str, scope: str, nnodes: int) -> None:
    (result, *_) = job.case(name)
    assert all(r["ok"] for r in job.case(name)), dump(job.case(name))
    base = f"{result['run_name']}-a0"
    want = expected("shared", scope, base, nnodes, 2)
    for run_id in sorted({e.run_id for e in want.values() if e.run_id}):
        writers = sorted(r for r, e in want.items() if e.run_id == run_id)
        rec = _server_run(server, run_id)
        assert rec["state"] == "finished", dump(rec)
        assert rec["exitcode"] == 0
        assert rec["writers"] == len(writers), dump(rec)
        rows: dict[int, list[int]] = {}
        for row in rec["history"]:
            rows.setdefault(int(row["rank"]), []).append(int(row["step_i"]))
        assert {r: sorted(v) for r, v in rows.items()} == {
            r: list(range(STEPS)) for r in writers
        }, dump(rec["history"])


@pytest.fixture(scope="module")
def online_job(
    wandb_server: WandbTestServer, tmp_path_factory: pytest.TempPathFactory
) -> LaunchResult:
    cases = [
        Case(name="shared_global", run_mode="shared", rank_scope="global"),
        Case(name="shared_worker", run_mode="shared", rank_scope="worker"),
        Case(name="shared_fails", run_mode="shared", rank_scope="global", fail_rank=1),
    ]
    return _launch(wandb_server, tmp_path_factory.mktemp("shared-online"), cases, 1, "on")


@pytest.mark.parametrize("scope", ["global", "worker"])
def test_all_ranks_write_one_shared_run(
    wandb_server: WandbTestServer, online_job: LaunchResult, scope: str
) -> None:
    _check(wandb_server, online_job, f"shared_{scope}", scope, nnodes=1)


def test_a_failed_secondary_fails_the_shared_run_online(
    wandb_server: WandbTestServer, online_job: LaunchResult
) -> None:
    (result,) = online_job.case("shared_fails")
    assert result["ok"] is False
    rec = _server_run(wandb_server, f"{result['run_name']}-a0")
    assert rec["state"] == "failed", dump(rec)
    assert rec["exitcode"] != 0
    ranks = sorted({int(row["rank"]) for row in rec["history"]})
    assert ranks == [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["global", "worker"])
def test_two_nodes_share_runs_online(
    wandb_server: WandbTestServer, tmp_path: Path, scope: str
) -> None:
    case = Case(name=f"shared_{scope}", run_mode="shared", rank_scope=scope)
    job = _launch(wandb_server, tmp_path, [case], 2, f"on2{scope[0]}")
    _check(wandb_server, job, case.name, scope, nnodes=2)


@pytest.mark.slow
def test_shared_run_on_openwandb(openwandb_server: OpenWandbServer, tmp_path: Path) -> None:
    """A second, independent server implementation of multi-process shared mode."""
    case = Case(name="shared_global", run_mode="shared", rank_scope="global")
    env = client_env(openwandb_server.url, tmp_path / "home")
    job = launch(tmp_path, [case], nnodes=1, nproc_per_node=2, run_prefix="ow", env=env)
    (result,) = job.case(case.name)
    assert result["ok"], dump(result)
    metrics = openwandb_server.metrics(f"{result['run_name']}-a0")
    ranks = sorted(int(m["value"]) for m in metrics["metrics_by_key"]["rank"])
    assert ranks == [0] * STEPS + [1] * STEPS, dump(metrics)


def test_an_elastic_restart_resumes_the_runs_on_the_server(
    wandb_server: WandbTestServer, tmp_path: Path
) -> None:
    """After a restart each rank's run goes on where the first attempt stopped: same id, its
    rows after the first attempt's, finished."""
    case = Case(
        name="restart", run_mode="new", rank_scope="global", max_restarts=1,
        fail_first_attempt_rank=1, fail_delay_s=2.0,
    )  # fmt: skip
    env = client_env(wandb_server.url, tmp_path / "home")
    # Each attempt gets its own store (see test_distributed_failures.py for why).
    env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    job = launch(tmp_path, [case], nnodes=1, nproc_per_node=2, run_prefix="onrs", env=env)
    (result,) = job.case("restart")
    assert result["ok"], dump(result)
    base = f"{result['run_name']}-a0"
    for rank in (0, 1):
        rec = _server_run(wandb_server, f"{base}-rank-{rank}")
        assert rec["state"] == "finished", dump(rec)
        steps = [int(row["step_i"]) for row in rec["history"]]
        assert steps == list(range(STEPS)) * 2, dump(rec["history"])
        assert [int(row["_step"]) for row in rec["history"]] == list(range(2 * STEPS))
