"""What the test server remembers: runs, their history and files, sweeps and agents.

State lives in memory behind one lock and is written to ``<data dir>/state.json`` after every
change, so a server that is killed and started again on the same folder still knows every row it
had acknowledged. Uploaded files are stored under ``<data dir>/files``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RUN_STATES_DONE = ("finished", "failed", "crashed", "killed")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def new_id(length: int = 8) -> str:
    """A lower-case id like the ones W&B hands out for sweeps and trial runs."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def storage_id(kind: str, *parts: str) -> str:
    """An opaque id in the style of the W&B GraphQL node ids (base64 of a type and a key)."""
    return base64.b64encode(f"{kind}:v1:{':'.join(parts)}".encode()).decode()


@dataclass
class ClientStream:
    """Per-writer bookkeeping of an async (shared-mode) file stream."""

    high_water: dict[str, int] = field(default_factory=dict)
    complete: bool = False
    exitcode: int | None = None


@dataclass
class Run:
    entity: str
    project: str
    name: str
    id: str
    display_name: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    sweep: str | None = None
    state: str = "running"
    notes: str | None = None
    description: str | None = None
    host: str | None = None
    program: str | None = None
    commit: str | None = None
    created_at: str = field(default_factory=_now)
    heartbeat_at: str = field(default_factory=_now)
    history: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exitcode: int | None = None
    uploaded: list[str] = field(default_factory=list)
    clients: dict[str, ClientStream] = field(default_factory=dict)
    # Per file of the non-shared stream: its line number -> position in the run's list.
    stream_index: dict[str, list[int | None]] = field(default_factory=dict)
    created_seq: int = 0
    # Every rewind (``resume_from``) the run went through: the step it was rewound to and the
    # number of history rows dropped.
    rewinds: list[dict[str, int]] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for line in self.history:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                out.append(row)
        return out

    def last_step(self) -> int | None:
        steps = [r["_step"] for r in self.rows() if isinstance(r.get("_step"), int)]
        return max(steps) if steps else None

    def rewind(self, step: int) -> int:
        """Drop every history row after ``step`` (rows of all writers); return how many went.

        What stays keeps its place, and the non-shared stream's line numbers restart after it:
        a rewound client sends its next rows from the returned history line count on.
        """
        kept = []
        for line in self.history:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("_step"), int) and row["_step"] <= step:
                kept.append(line)
        dropped = len(self.history) - len(kept)
        self.history = kept
        self.stream_index["wandb-history.jsonl"] = list(range(len(kept)))
        for client in self.clients.values():
            client.high_water.pop("wandb-history.jsonl", None)
        self.rewinds.append({"step": step, "dropped": dropped})
        return dropped

    def user_config(self) -> dict[str, Any]:
        """The config as the user sees it: values unwrapped, internal keys left out."""
        out: dict[str, Any] = {}
        for key, value in self.config.items():
            if key in ("_wandb", "wandb_version"):
                continue
            out[key] = value["value"] if isinstance(value, dict) and "value" in value else value
        return out


@dataclass
class Sweep:
    entity: str
    project: str
    name: str
    id: str
    config_yaml: str
    config: dict[str, Any]
    state: str = "RUNNING"
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    display_name: str | None = None
    description: str | None = None
    # Trials handed out to an agent that have not created their run yet: run id -> agent id.
    pending: dict[str, str] = field(default_factory=dict)
    pending_config: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Agent:
    id: str
    sweep: str
    entity: str
    project: str
    host: str | None = None
    last_seen: float = field(default_factory=time.time)
    assigned: list[str] = field(default_factory=list)


class Store:
    """All server state. Every public method takes the lock; callers never touch it."""

    def __init__(self, data_dir: Path, entity: str) -> None:
        self.data_dir = data_dir
        self.files_dir = data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.default_entity = entity
        self.lock = threading.RLock()
        self.runs: dict[tuple[str, str, str], Run] = {}
        self.sweeps: dict[tuple[str, str, str], Sweep] = {}
        self.agents: dict[str, Agent] = {}
        # Runs whose client asked RunResumeStatus: their next UpsertBucket makes them live again.
        self.resuming: set[tuple[str, str, str]] = set()
        self._seq = 0
        self._load()

    # -- persistence ---------------------------------------------------------------------------

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "state.json"

    def _load(self) -> None:
        if not self._state_file.exists():
            return
        raw = json.loads(self._state_file.read_text())
        for r in raw.get("runs", []):
            clients = {k: ClientStream(**v) for k, v in r.pop("clients", {}).items()}
            run = Run(**r, clients=clients)
            self.runs[(run.entity, run.project, run.name)] = run
            self._seq = max(self._seq, run.created_seq)
        for s in raw.get("sweeps", []):
            sweep = Sweep(**s)
            self.sweeps[(sweep.entity, sweep.project, sweep.name)] = sweep
        for a in raw.get("agents", []):
            agent = Agent(**a)
            self.agents[agent.id] = agent

    def save(self) -> None:
        with self.lock:
            raw = {
                "runs": [asdict(r) for r in self.runs.values()],
                "sweeps": [asdict(s) for s in self.sweeps.values()],
                "agents": [asdict(a) for a in self.agents.values()],
            }
            tmp = self._state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(raw))
            os.replace(tmp, self._state_file)

    # -- runs ----------------------------------------------------------------------------------

    def get_run(self, entity: str | None, project: str | None, name: str | None) -> Run | None:
        with self.lock:
            key = (entity or self.default_entity, project or "uncategorized", name or "")
            return self.runs.get(key)

    def run_by_storage_id(self, sid: str) -> Run | None:
        with self.lock:
            for run in self.runs.values():
                if run.id == sid:
                    return run
            return None

    def ensure_run(self, entity: str | None, project: str | None, name: str) -> Run:
        entity = entity or self.default_entity
        project = project or "uncategorized"
        with self.lock:
            run = self.runs.get((entity, project, name))
            if run is None:
                self._seq += 1
                run = Run(
                    entity=entity,
                    project=project,
                    name=name,
                    id=storage_id("Run", entity, project, name),
                    created_seq=self._seq,
                )
                self.runs[(entity, project, name)] = run
            return run

    def project_runs(self, entity: str | None, project: str | None) -> list[Run]:
        entity = entity or self.default_entity
        with self.lock:
            runs = [r for r in self.runs.values() if r.entity == entity and r.project == project]
            return sorted(runs, key=lambda r: r.created_seq)

    def file_path(self, entity: str, project: str, run: str, name: str) -> Path:
        path = (self.files_dir / entity / project / run / name).resolve()
        if self.files_dir.resolve() not in path.parents:
            raise ValueError(f"file name {name!r} escapes the run folder")
        return path

    def run_files(self, run: Run) -> list[tuple[str, int]]:
        root = self.files_dir / run.entity / run.project / run.name
        if not root.exists():
            return []
        out = [
            (p.relative_to(root).as_posix(), p.stat().st_size)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        ]
        return out

    # -- sweeps --------------------------------------------------------------------------------

    def find_sweep(
        self, name: str, entity: str | None = None, project: str | None = None
    ) -> Sweep | None:
        with self.lock:
            for sweep in self.sweeps.values():
                if sweep.name != name:
                    continue
                if entity and sweep.entity != entity:
                    continue
                if project and sweep.project != project:
                    continue
                return sweep
            return None

    def sweep_runs(self, sweep: Sweep) -> list[Run]:
        with self.lock:
            return sorted(
                (
                    r
                    for r in self.runs.values()
                    if r.sweep == sweep.name and r.entity == sweep.entity
                ),
                key=lambda r: r.created_seq,
            )
