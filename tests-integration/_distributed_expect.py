"""What the specification's distributed tables say each rank records, and readers of what it did.

The expectations are written out from the specification's two tables ("Run modes in
distributed context" and "Run ID patterns"), not computed with core's planner, so the tests
check the whole chain (core plan, plugin, wandb, Elastic workers) against the document itself.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import WandbTestServer, client_env
from torchrun_harness import Case, LaunchResult, launch, launch_torchrun

from flyteplugins.wandb._records import RunRecord, iter_payloads, read_run

STEPS = 3
PROJECT = "dist-tests"
MODES = ("auto", "new", "shared")
SCOPES = ("global", "worker")
PAIRS = [(m, s) for m in MODES for s in SCOPES]


@dataclass(frozen=True)
class Expect:
    """What one rank does: the run it writes (None: silent), the group, its shared-mode label."""

    run_id: str | None
    group: str | None = None
    label: str | None = None
    primary: bool = True


def expected(mode: str, scope: str, base: str, nnodes: int, nproc: int) -> dict[int, Expect]:
    """Rank -> what it records, for a job of ``nnodes`` x ``nproc`` processes."""
    out: dict[int, Expect] = {}
    multi = nnodes > 1
    per_worker = multi and scope == "worker"
    for node in range(nnodes):
        for local in range(nproc):
            rank = node * nproc + local
            if mode == "auto":
                if per_worker:
                    out[rank] = Expect(f"{base}-worker-{node}" if local == 0 else None)
                else:
                    out[rank] = Expect(base if rank == 0 else None)
            elif mode == "shared":
                if per_worker:
                    out[rank] = Expect(
                        f"{base}-worker-{node}",
                        label=f"worker-{node}-rank-{local}",
                        primary=local == 0,
                    )
                else:
                    out[rank] = Expect(base, label=f"rank-{rank}", primary=rank == 0)
            elif per_worker:
                group = f"{base}-worker-{node}"
                out[rank] = Expect(f"{group}-rank-{local}", group=group)
            else:
                out[rank] = Expect(f"{base}-rank-{rank}", group=base)
    return out


def offline_env(root: Path) -> dict[str, str]:
    """The environment of a job whose workers write offline runs under ``root``."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / ".config"),
        "WANDB_CACHE_DIR": str(root / ".cache"),
        "WANDB_SILENT": "true",
    }


def run_files(wandb_dir: Path) -> list[Path]:
    """Every offline run file the job wrote, oldest first (``latest-run`` links to one)."""
    files = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    return sorted(files, key=lambda p: (p.stat().st_mtime, str(p)))


def records_by_id(wandb_dir: Path) -> dict[str, list[RunRecord]]:
    out: dict[str, list[RunRecord]] = {}
    for path in run_files(wandb_dir):
        rec = read_run(path)
        assert rec.run_id is not None, path
        out.setdefault(rec.run_id, []).append(rec)
    return out


_LABEL = re.compile(r"/l:(.+)$")


def labels_of(rec: RunRecord) -> set[str]:
    """The shared-mode labels one run file carries: on its system metrics and console log."""
    from wandb.proto import wandb_internal_pb2 as pb

    found: set[str] = set()
    for payload in iter_payloads(rec.path.read_bytes()):
        r = pb.Record()  # type: ignore[attr-defined]
        r.ParseFromString(payload)
        if r.WhichOneof("record_type") == "stats":
            for item in r.stats.item:
                m = _LABEL.search(item.key)
                if m:
                    found.add(m.group(1))
    for log in (rec.path.parent / "files").glob("output_*.log"):
        found.add(log.name[len("output_") : -len(".log")])
    return found


def wrote_metadata(rec: RunRecord) -> bool:
    """Whether this writer saved the run's metadata (``x_primary``): only the primary does."""
    from wandb.proto import wandb_internal_pb2 as pb

    for payload in iter_payloads(rec.path.read_bytes()):
        r = pb.Record()  # type: ignore[attr-defined]
        r.ParseFromString(payload)
        if r.WhichOneof("record_type") == "environment":
            return True
    return False


def resume_requested(rec: RunRecord) -> bool:
    """Whether ``wandb.init`` was called with ``resume`` (the client's telemetry records it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    for payload in iter_payloads(rec.path.read_bytes()):
        r = pb.Record()  # type: ignore[attr-defined]
        r.ParseFromString(payload)
        if r.WhichOneof("record_type") == "run" and r.run.telemetry.feature.resume:
            return True
    return False


def rows_by_rank(recs: list[RunRecord]) -> dict[int, list[dict[str, Any]]]:
    """History rows of one run id, keyed by the ``rank`` each worker logged."""
    out: dict[int, list[dict[str, Any]]] = {}
    for rec in recs:
        for row in rec.history:
            out.setdefault(int(row["rank"]), []).append(row)
    return out


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)[:4000]


# What a launcher inherits and its workers must not: a wandb-core service token of another
# process (this one does not exist) and the launcher's own run id.
LAUNCHER_LEFTOVERS = {
    "WANDB_SERVICE": "3-1-unix-/nonexistent/flyteplugins-wandb-test.sock",
    "WANDB_RUN_ID": "the-launchers-own-run",
}


def case_name(mode: str, scope: str) -> str:
    """The harness case of one run_mode x rank_scope pair in :func:`pair_cases`."""
    return f"{mode}_{scope}"


def pair_cases() -> list[Case]:
    """One case per pair of :data:`PAIRS` (:data:`STEPS` steps each), the auto pairs first:
    their silent ranks have not imported wandb for an earlier case of the same worker process,
    so "never imported" is still checkable for them."""
    assert [m for m, _ in PAIRS[:2]] == ["auto", "auto"]
    return [Case(name=case_name(m, s), run_mode=m, rank_scope=s, steps=STEPS) for m, s in PAIRS]


# Ranks that raise, run by the offline 1x2 job after the pairs (test_distributed_failures.py):
# each worker records the exception and goes on with the next case, as a long-lived worker does.
FAILURE_CASES = [
    Case(name="auto_rank0_fails", run_mode="auto", rank_scope="global", fail_rank=0),
    Case(name="new_rank1_fails", run_mode="new", rank_scope="global", fail_rank=1),
    Case(name="shared_secondary_fails", run_mode="shared", rank_scope="global", fail_rank=1),
]
# The W&B tab of a distributed task (test_report_distributed.py).
REPORT_STEPS = 4
REPORT_CASE = Case(name="report_new", run_mode="new", steps=REPORT_STEPS, report=True)


def launch_offline(root: Path, nnodes: int, prefix: str, extra: list[Case]) -> LaunchResult:
    """One real ``torchrun`` job of ``nnodes`` x 2 processes (Flyte's clustered ``TorchRun``
    task, one ``torchrun`` per node) whose workers run every pair of :data:`PAIRS`, then the
    ``extra`` cases, in turn inside one process per rank, offline under ``root``.

    The workers see what ``torchrun`` gives them (``GROUP_RANK``, ``LOCAL_WORLD_SIZE``, ...) and
    what Flyte's clustered launcher exports; core's fallbacks for launchers that export less
    (``NODE_RANK``, ``WORLD_SIZE // NNODES``) are rows of its table-driven tests.
    """
    return launch_torchrun(
        root,
        [*pair_cases(), *extra],
        nnodes=nnodes,
        nproc_per_node=2,
        run_prefix=prefix,
        project=PROJECT,
        env={**offline_env(root), **LAUNCHER_LEFTOVERS},
    )


def check_pair(
    job: LaunchResult, mode: str, scope: str, nnodes: int, nproc: int, *, elastic: bool = False
) -> None:
    """Check one pair's case of ``job`` against the tables.

    ``elastic``: launched through the Elastic plugin (one result per launcher, the rendezvous id
    is the Flyte run name); otherwise by ``torchrun`` workers (one result per rank).
    """
    name = case_name(mode, scope)
    results = job.case(name)
    logs = "\n".join(Path(p).read_text(errors="replace")[-3000:] for p in job.logs)
    assert job.returncodes == [0] * nnodes, logs
    assert len(results) == (nnodes if elastic else nnodes * nproc), logs
    assert all(r["ok"] for r in results), dump(results)
    run_name = results[0]["run_name"]
    base = f"{run_name}-a0"
    want = expected(mode, scope, base, nnodes, nproc)

    # Every worker: the run it got, its distributed info, and wandb only where it logs.
    evidence = {e["rank"]: e for e in job.evidence(name)}
    assert sorted(evidence) == list(range(nnodes * nproc)), dump(evidence)
    for rank, ev in evidence.items():
        exp: Expect = want[rank]
        assert ev["has_run"] == (exp.run_id is not None), (rank, dump(ev))
        assert ev["run_id"] == exp.run_id, (rank, dump(ev))
        assert ev["wandb_imported"] == (exp.run_id is not None), (rank, dump(ev))
        info = ev["info"]
        assert info["rank"] == rank
        assert info["world_size"] == nnodes * nproc
        assert info["local_world_size"] == nproc
        assert info["num_workers"] == nnodes
        node = ev["env"]["GROUP_RANK"] or ev["env"]["NODE_RANK"]
        assert info["worker_index"] == rank // nproc == int(node)
        assert info["local_rank"] == rank % nproc
        if elastic:
            assert ev["env"]["TORCHELASTIC_RUN_ID"] == run_name
        assert ev["run_name"] == run_name
        # Worker hygiene: the launcher's service token and run id did not reach the worker.
        token = ev["env"]["WANDB_SERVICE"]
        assert token is None or token.startswith(f"3-{ev['pid']}-"), dump(ev)
        assert ev["env"]["WANDB_RUN_ID"] is None, dump(ev)
        assert ev["allreduce"] == sum(r + 1 + STEPS - 1 for r in range(nnodes * nproc))

    # What W&B recorded for this case: exactly the runs of the table, nothing else.
    recorded = {
        rid: recs
        for rid, recs in records_by_id(job.out).items()
        if rid == base or rid.startswith(base + "-")
    }
    want_ids = {e.run_id for e in want.values() if e.run_id is not None}
    assert set(recorded) == want_ids, dump(sorted(recorded))
    for run_id in want_ids:
        writers = sorted(r for r, e in want.items() if e.run_id == run_id)
        recs = recorded[run_id]
        # One offline file per writer; shared mode offline: one per rank, same id.
        assert len(recs) == len(writers), (run_id, [str(r.path) for r in recs])
        groups = {want[r].group for r in writers}
        assert {rec.group for rec in recs} == groups, (run_id, [rec.group for rec in recs])
        assert all(rec.project == PROJECT for rec in recs)
        assert all(rec.exit_code == 0 for rec in recs), [rec.exit_code for rec in recs]
        rows = rows_by_rank(recs)
        assert sorted(rows) == writers, (run_id, sorted(rows))
        for rank in writers:
            assert [row["step_i"] for row in rows[rank]] == list(range(STEPS)), rows[rank]
        if mode == "shared":
            by_label = {}
            for rec in recs:
                (label,) = labels_of(rec)
                by_label[label] = rec
            assert set(by_label) == {want[r].label for r in writers}
            primaries = [lab for lab, rec in by_label.items() if wrote_metadata(rec)]
            assert primaries == [want[r].label for r in writers if want[r].primary]
        else:
            assert all(labels_of(rec) == set() for rec in recs)


# -- the Elastic 1x2 job (conftest.elastic_1x2) ------------------------------------------------

# The remote path's case: a shared run, so the workers also meet through the agent's store.
ELASTIC_PAIR = ("shared", "global")
ELASTIC_CASES = [
    Case(name=case_name(*ELASTIC_PAIR), run_mode="shared", rank_scope="global", steps=STEPS),
    # rank 0 is still busy when rank 1 fails: the agent stops it with SIGTERM.
    Case(
        name="survivor_stopped", run_mode="new", rank_scope="global",
        fail_rank=1, linger_rank=0, linger_s=60.0,
    ),
    # torch 2.13's elastic agent shares its rendezvous store with the workers and keeps the
    # first attempt's gloo addresses in it, so a restarted gloo group fails to connect (with or
    # without W&B). Each attempt gets a store of its own instead.
    Case(
        name="restart", run_mode="new", rank_scope="global",
        max_restarts=1, fail_first_attempt_rank=1,
        env={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"},
    ),
]  # fmt: skip


def launch_elastic(root: Path) -> LaunchResult:
    """One launcher process calling an ``Elastic`` task's own ``execute`` under a remote Flyte
    task context for each of :data:`ELASTIC_CASES` (``flyteplugins-pytorch`` starts 2 workers
    with ``elastic_launch`` per case and restores the Flyte context in each), offline. The
    launcher carries a wandb-core token and a run id of its own, which must not reach the
    workers."""
    return launch(
        root, ELASTIC_CASES, nnodes=1, nproc_per_node=2, run_prefix="el",
        env=offline_env(root), launcher_env=LAUNCHER_LEFTOVERS,
    )  # fmt: skip


# -- the online 1x2 job (conftest.online_1x2) ------------------------------------------------

# Every rank of a real torchrun job writes to one shared run on the test server.
ONLINE_CASES = [
    Case(name="shared_global", run_mode="shared", rank_scope="global"),
    Case(name="shared_worker", run_mode="shared", rank_scope="worker"),
    Case(name="shared_fails", run_mode="shared", rank_scope="global", fail_rank=1),
]
# Last: the server dies once both ranks have logged their steps; the ranks then log a few more
# rows and return, and the job must end within this finish_timeout of that.
BOUNDED_S = 8.0
BOUNDED_CASE = Case(
    name="bounded", run_mode="shared", rank_scope="global", steps=STEPS,
    finish_timeout=BOUNDED_S, rows_after_pause=3,
)  # fmt: skip


@dataclass
class OnlineJob:
    server: WandbTestServer  # the job's own server; killed during the bounded case
    job: LaunchResult
    home: Path  # HOME and WANDB_DIR of every worker
    runs: dict[str, dict[str, Any]]  # run id -> the server's record, read before the kill

    def run(self, run_id: str) -> dict[str, Any]:
        """What the server recorded for ``run_id`` by the time the bounded case began."""
        assert run_id in self.runs, (run_id, sorted(self.runs))
        return self.runs[run_id]


def _server_runs(server: WandbTestServer) -> dict[str, dict[str, Any]]:
    return {
        r["name"]: server.run(r["entity"], PROJECT, r["name"]) for r in server.runs(project=PROJECT)
    }


def _kill_when_ready(
    server: WandbTestServer, folder: Path, done: threading.Event, seen: dict[str, Any]
) -> None:
    """Once both ranks wrote ``ready-*`` in ``folder``: keep what the server recorded of the
    earlier cases (finished by then) in ``seen``, kill it, and let the ranks go on."""
    while not done.is_set():
        if (folder / "ready-0").exists() and (folder / "ready-1").exists():
            seen.update(_server_runs(server))
            server.kill()
            (folder / "go").write_text("server killed")
            return
        time.sleep(0.05)


def launch_online(server: WandbTestServer, root: Path) -> OnlineJob:
    """The online cases, then the bounded case, in one 1x2 ``torchrun`` job against ``server``."""
    home = root / "home"
    env = client_env(server.url, home)
    done = threading.Event()
    seen: dict[str, Any] = {}
    folder = root / BOUNDED_CASE.name
    killer = threading.Thread(target=_kill_when_ready, args=(server, folder, done, seen))
    killer.start()
    try:
        job = launch_torchrun(
            root, [*ONLINE_CASES, BOUNDED_CASE], nnodes=1, nproc_per_node=2, run_prefix="on",
            project=PROJECT, env=env,
        )  # fmt: skip
    finally:
        done.set()
        killer.join()
    if not seen and server.running:  # the bounded case never got ready: keep what there is
        seen.update(_server_runs(server))
    return OnlineJob(server=server, job=job, home=home, runs=seen)
