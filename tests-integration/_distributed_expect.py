"""What the specification's distributed tables say each rank records, and readers of what it did.

The expectations are written out from the specification's two tables ("Run modes in
distributed context" and "Run ID patterns"), not computed with core's planner, so the tests
check the whole chain (core plan, plugin, wandb, Elastic workers) against the document itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrun_harness import Case, LaunchResult, launch

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
    """The harness case of one run_mode x rank_scope pair in :func:`launch_pairs`' jobs."""
    return f"{mode}_{scope}"


def launch_pairs(root: Path, nnodes: int, prefix: str) -> LaunchResult:
    """A real Elastic job of ``nnodes`` x 2 processes running every pair of :data:`PAIRS` in
    turn (one ``execute`` each, :data:`STEPS` steps), offline under ``root``."""
    cases = [Case(name=case_name(m, s), run_mode=m, rank_scope=s, steps=STEPS) for m, s in PAIRS]
    return launch(
        root,
        cases,
        nnodes=nnodes,
        nproc_per_node=2,
        run_prefix=prefix,
        env=offline_env(root),
        launcher_env=LAUNCHER_LEFTOVERS,
    )
