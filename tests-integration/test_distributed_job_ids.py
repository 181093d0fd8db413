"""Run ids of decorated functions under plain ``torchrun``: one job, one set of runs.

A function that no Flyte action names takes its base id from its job (``_distributed.job_id``):
the launcher's rendezvous id when it is real, else an id the ranks agree on through the job's
store, else (no store) a fresh id per rank with a warning naming ``--rdzv-id``. Before, every
job without ``--rdzv-id`` was ``none-<function>`` and, with ``resume="allow"``, the second job
appended to the first one's run.

The jobs are real ``torchrun`` processes (``torchrun_harness.launch_torchrun(plain=True)``)
whose workers call decorated plain functions; what is checked is what the real wandb client
wrote (offline ``.wandb`` files) and each worker's own evidence.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
from _distributed_expect import STEPS, dump, expected, offline_env, records_by_id, rows_by_rank
from torchrun_harness import Case, LaunchResult, fake_agent_store, launch_torchrun

from flyteplugins.wandb import _distributed as d
from flyteplugins.wandb_core import Topology, make_base, plan

pytestmark = pytest.mark.timeout(900)

MODES = ("auto", "shared", "new")
TOKEN = re.compile(r"^job-[0-9a-f]{12}$")
TWO_RANKS = Topology(rank=0, world_size=2, local_rank=0, local_world_size=2, worker_index=0)
TWO_NODES = Topology(rank=0, world_size=4, local_rank=0, local_world_size=2, worker_index=0)


# -- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (None, None),
        ("", None),
        ("none", None),  # torchrun's default when --rdzv-id is not given
        ("NONE", None),
        ("  none ", None),
        ("6970bfab-ca38-48ff-be61-1d57c9a63f51", "6970bfab-ca38-48ff-be61-1d57c9a63f51"),
        ("my-job-7", "my-job-7"),
    ],
)
def test_placeholder_rendezvous_ids_are_not_ids(value: str | None, want: str | None) -> None:
    env = {} if value is None else {"TORCHELASTIC_RUN_ID": value}
    assert d.rendezvous_id(env) == want


def test_each_rank_proposes_a_fresh_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a rendezvous id each rank proposes a fresh id; the store decides which wins."""
    monkeypatch.setattr(d, "_warned_no_store", True)  # the warning has its own test
    fresh = {d.job_id(TWO_RANKS, {"TORCHELASTIC_RUN_ID": "none"}) for _ in range(5)}
    assert len(fresh) == 5 and all(TOKEN.match(t) for t in fresh)
    assert all(make_base(t, "train") == f"{t}-train" for t in fresh)


@pytest.fixture
def agent_store(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real TCPStore standing in for a torchrun agent's, with the worker variables."""
    return fake_agent_store(monkeypatch)


def _client(server: Any) -> Any:
    return dist.TCPStore("127.0.0.1", server.port, is_master=False, timeout=timedelta(seconds=10))


def test_the_first_proposal_in_the_store_wins_for_every_rank_and_restart(
    agent_store: Any,
) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def rank(proposal: str) -> None:
        got = d.agree(_client(agent_store), proposal)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=rank, args=(f"job-{i:012x}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1, results
    # A restarted attempt (new processes, same agent store) reads the first attempt's id.
    assert d.agree(_client(agent_store), "job-restarted000") == results[0]
    assert agent_store.get(d.JOB_ID_KEY).decode() == results[0]


def test_job_id_prefers_a_real_rendezvous_id(agent_store: Any) -> None:
    env = {**os.environ, "TORCHELASTIC_RUN_ID": "my-job-7"}
    assert d.job_id(TWO_RANKS, env) == "my-job-7"
    assert not agent_store.check([d.JOB_ID_KEY])  # the store was not needed


def test_job_id_without_rendezvous_id_is_agreed_in_the_store(agent_store: Any) -> None:
    agent_store.set(d.JOB_ID_KEY, "job-0123456789ab")  # another rank was first
    env = {**os.environ, "TORCHELASTIC_RUN_ID": "none", "TORCHELASTIC_RESTART_COUNT": "0"}
    assert d.job_id(TWO_RANKS, env) == "job-0123456789ab"
    assert d.launcher_base("train", TWO_RANKS, env) == "job-0123456789ab-train"


def test_without_a_store_ranks_of_a_job_are_warned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for var in ("TORCHELASTIC_USE_AGENT_STORE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(d, "_warned_no_store", False)
    env = {"TORCHELASTIC_RUN_ID": "none", "TORCHELASTIC_RESTART_COUNT": "0"}
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        assert TOKEN.match(d.job_id(TWO_RANKS, env))
        d.job_id(TWO_NODES, env)  # warned once per process
    (record,) = caplog.records
    assert "--rdzv-id" in record.getMessage() and "'none'" in record.getMessage()


def test_a_single_process_keeps_a_local_base() -> None:
    assert d.launcher_base("train", None, {"TORCHELASTIC_RUN_ID": "x"}) == "local-train"


# -- real torchrun jobs ------------------------------------------------------------------------


def _cases(**kw: Any) -> list[Case]:
    return [Case(name=m, run_mode=m, rank_scope="global", steps=STEPS, **kw) for m in MODES]


# Static rendezvous on a given port: torchrun sets TORCHELASTIC_RUN_ID=none (no --rdzv-id).
STATIC = ["--master_addr=127.0.0.1", "--master_port={port}"]


def _job(root: Path, cases: list[Case], rdzv: list[str], **kw: Any) -> tuple[LaunchResult, str]:
    """A one-node, two-process plain torchrun job writing offline runs under ``root``."""
    env = {**offline_env(root), **kw.pop("env", {})}
    job = launch_torchrun(
        root, cases, nnodes=1, nproc_per_node=2, env=env, plain=True, rdzv=rdzv, **kw
    )
    logs = "\n".join(Path(p).read_text(errors="replace")[-4000:] for p in job.logs)
    return job, logs


def _evidence(job: LaunchResult, case: str) -> list[dict[str, Any]]:
    return sorted(job.evidence(case), key=lambda e: (e["restart"], e["rank"]))


def _job_id(job: LaunchResult) -> str:
    """The id the job's ranks agreed on: the base of rank 0's auto-mode run."""
    (rank0,) = [e for e in _evidence(job, "auto") if e["rank"] == 0]
    suffix = "-train_auto"
    assert rank0["run_id"].endswith(suffix), dump(rank0)
    return str(rank0["run_id"][: -len(suffix)])


def _check_job(job: LaunchResult, logs: str, job_id: str) -> dict[str, set[str]]:
    """Each case recorded exactly its table's runs under ``job_id``; returns the ids per case."""
    assert job.returncodes == [0], logs
    assert all(r["ok"] for r in job.results), dump(job.results)
    records = records_by_id(job.out)
    ids: dict[str, set[str]] = {}
    for mode in MODES:
        base = f"{job_id}-train_{mode}"
        want = expected(mode, "global", base, 1, 2)
        evidence = {e["rank"]: e for e in _evidence(job, mode)}
        assert sorted(evidence) == [0, 1], dump(evidence)
        for rank, ev in evidence.items():
            assert ev["run_id"] == want[rank].run_id, (mode, rank, dump(ev))
            assert ev["run_name"] is None  # no Flyte context: a plain function
        run_ids = {e.run_id for e in want.values() if e.run_id is not None}
        for run_id in run_ids:
            writers = sorted(r for r, e in want.items() if e.run_id == run_id)
            recs = records[run_id]
            assert len(recs) == len(writers), (run_id, [str(r.path) for r in recs])
            rows = rows_by_rank(recs)
            assert {r: [row["step_i"] for row in v] for r, v in rows.items()} == {
                r: list(range(STEPS)) for r in writers
            }, (run_id, rows)
        ids[mode] = run_ids
    return ids


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[LaunchResult, str]]:
    """The same script launched twice with a static rendezvous and no ``--rdzv-id``."""
    return [_job(tmp_path_factory.mktemp(f"job-{i}"), _cases(), STATIC) for i in range(2)]


def test_two_jobs_without_rdzv_id_are_two_sets_of_runs(
    two_jobs: list[tuple[LaunchResult, str]],
) -> None:
    found = []
    for job, logs in two_jobs:
        for ev in _evidence(job, "auto"):
            assert ev["env"]["TORCHELASTIC_RUN_ID"] == "none", dump(ev)
            assert ev["env"]["TORCHELASTIC_USE_AGENT_STORE"] == "True"  # agreed in the store
        job_id = _job_id(job)
        assert TOKEN.match(job_id), job_id
        found.append((job_id, _check_job(job, logs, job_id)))
    (first_id, first), (second_id, second) = found
    assert first_id != second_id
    for mode in MODES:
        assert not first[mode] & second[mode], (mode, first[mode], second[mode])


def test_a_restarted_job_resumes_its_own_runs(tmp_path: Path) -> None:
    """c10d rendezvous with ``--rdzv-id`` and without any store at the call (no agent store
    for the workers; their group forms inside the call), restarted once after rank 1 fails:
    the rendezvous id names the runs, and each rank's run goes on with the first attempt's id.
    (Without a rendezvous id nor a store the ranks cannot agree on an id: they are warned, see
    above.)"""
    case = Case(
        name="restart", run_mode="new", rank_scope="global", steps=STEPS,
        fail_first_attempt_rank=1, fail_delay_s=2.0,
    )  # fmt: skip
    # Each attempt needs a store of its own for a restarted gloo group to connect (torch
    # 2.13, see test_distributed_failures.py); the workers then have no agent store.
    env = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    rdzv = ["--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:{port}", "--rdzv-id=restart-7"]
    job, logs = _job(tmp_path, [case], rdzv, env=env, max_restarts=1, group_in_call=True)
    assert job.returncodes == [0], logs
    evidence = _evidence(job, "restart")
    assert [(e["restart"], e["rank"]) for e in evidence] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(e["env"]["TORCHELASTIC_RUN_ID"] == "restart-7" for e in evidence)
    # No agent store, and the group forms inside the call: the rendezvous id names the job.
    assert all(e["env"]["TORCHELASTIC_USE_AGENT_STORE"] == "False" for e in evidence)
    ids = {(e["restart"], e["rank"]): e["run_id"] for e in evidence}
    for rank in (0, 1):
        assert ids[(0, rank)] == ids[(1, rank)], ids
    assert ids[(0, 0)] == "restart-7-train_restart-rank-0", ids
    assert ids[(0, 1)] == "restart-7-train_restart-rank-1", ids
    records = records_by_id(tmp_path)
    assert set(records) == {ids[(0, 0)], ids[(0, 1)]}, sorted(records)
    for rank in (0, 1):
        recs = records[ids[(0, rank)]]
        assert len(recs) == 2, [str(r.path) for r in recs]  # one offline file per attempt
        assert recs[-1].exit_code == 0
        assert [row["step_i"] for row in recs[-1].history] == list(range(STEPS))
    assert records[ids[(0, 1)]][0].exit_code == 1


def test_the_planned_ids_follow_the_agreed_base() -> None:
    """What the jobs above check against: core's plan with the agreed base."""
    p = plan(
        "new", "global", TWO_RANKS, d.launcher_base("f", TWO_RANKS, {"TORCHELASTIC_RUN_ID": "j"})
    )
    assert (p.run_id, p.group) == ("j-f-rank-0", "j-f")
