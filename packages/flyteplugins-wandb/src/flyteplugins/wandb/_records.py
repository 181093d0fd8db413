"""Read an offline ``run-<id>.wandb`` file (the client ships no reader): a 7-byte header
(``:W&B``, uint16 ``0xBEE1``, version), then LevelDB log framing (32 KiB blocks; crc32, length,
type) around ``wandb_internal_pb2.Record`` payloads."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK_SIZE = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class RecordFormatError(ValueError):
    """The file is not a wandb run file, or it is damaged."""


@dataclass
class RunRecord:
    """What one ``.wandb`` file says about its run."""

    path: Path
    run_id: str | None = None
    project: str | None = None
    entity: str | None = None
    group: str | None = None
    job_type: str | None = None
    name: str | None = None
    notes: str | None = None
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    preempting: bool = False
    resumed: bool = False

    @property
    def finished(self) -> bool:  # an exit record was written
        return self.exit_code is not None

    def metric(self, key: str) -> list[Any]:
        """Every logged value of ``key`` (rows without it skipped), in logging order."""
        return [row[key] for row in self.history if key in row]


def iter_payloads(data: bytes) -> Iterator[bytes]:
    """The record payloads of a run file's bytes, checking header, framing and checksums."""
    if len(data) < 7 or data[:4] != b":W&B":
        raise RecordFormatError("not a W&B run file: missing the ':W&B' header")
    (magic,) = struct.unpack("<H", data[4:6])
    if magic != 0xBEE1:
        raise RecordFormatError(f"not a W&B run file: magic number {magic:#x}")
    pos = 7
    pending: bytearray | None = None
    while pos < len(data):
        room = BLOCK_SIZE - pos % BLOCK_SIZE
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7].ljust(7, b"\0"))
        if room < 7 or (kind == 0 and length == 0):
            pos += room  # zero padding at the end of a block (or of a file still being written)
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        if len(chunk) < length:
            return  # a record cut short: the writer was still running or was killed
        if crc != zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF:
            raise RecordFormatError(f"checksum mismatch in the record at byte {pos + 7}")
        pos += 7 + length
        if kind in (FULL, FIRST):
            pending = bytearray(chunk)
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += chunk
        else:
            raise RecordFormatError(f"unexpected record type {kind} at byte {pos - length}")
        if kind in (FULL, LAST):
            yield bytes(pending)
            pending = None


def _records(path: str | os.PathLike[str]) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    for payload in iter_payloads(Path(path).read_bytes()):
        (rec := pb.Record()).ParseFromString(payload)  # type: ignore[attr-defined]
        yield rec


def _apply(target: dict[str, Any], update: Any = (), remove: Any = ()) -> None:
    """Set (``update``) and drop (``remove``) the items' nested keys in ``target``."""
    for item, drop in [(i, False) for i in update] + [(i, True) for i in remove]:
        *parents, last = list(item.nested_key) or [item.key]
        node: Any = target
        for part in parents:
            if not isinstance(node.get(part), dict):
                if drop:
                    break
                node[part] = {}
            node = node[part]
        else:
            if drop:
                node.pop(last, None)
            else:
                node[last] = json.loads(item.value_json)


_RUN_FIELDS = {"run_id": "run_id", "project": "project", "entity": "entity", "group": "run_group",
               "job_type": "job_type", "name": "display_name", "notes": "notes"}  # fmt: skip


def read_run(path: str | Path) -> RunRecord:
    """Parse one ``run-<id>.wandb`` file."""
    out = RunRecord(path=Path(path))
    for rec in _records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            for attr, name in _RUN_FIELDS.items():
                setattr(out, attr, getattr(r, name) or getattr(out, attr))
            out.tags = list(r.tags) or out.tags
            _apply(out.config, r.config.update, r.config.remove)
            out.resumed = out.resumed or r.resumed
        elif kind == "config":
            _apply(out.config, rec.config.update, rec.config.remove)
        elif kind == "history":
            out.history.append({})
            _apply(out.history[-1], rec.history.item)
        elif kind == "summary":
            _apply(out.summary, rec.summary.update, rec.summary.remove)
        elif kind == "exit":
            out.exit_code = rec.exit.exit_code
        elif kind == "preempting":
            out.preempting = True
    out.config.pop("_wandb", None)
    return out


def find_run_files(root: str | Path) -> list[Path]:
    """Every ``run-*.wandb`` file under ``root`` (e.g. a ``WANDB_DIR``), oldest first."""
    files = [p for p in Path(root).rglob("run-*.wandb") if p.is_file()]
    return sorted(files, key=lambda p: (p.stat().st_mtime, str(p)))


def read_runs(root: str | Path) -> list[RunRecord]:
    """:func:`read_run` for every run file under ``root``, oldest first."""
    return [read_run(p) for p in find_run_files(root)]


def recorded_artifacts(run_file: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The artifacts an offline run logged: ``name``, ``type``, ``digest``, ``aliases``,
    ``metadata`` and ``entries`` (``path``, ``ref``, ``digest``, ``size``) of each."""
    out = []
    for a in (r.artifact for r in _records(run_file) if r.WhichOneof("record_type") == "artifact"):
        entries = [{"path": e.path, "ref": e.ref, "digest": e.digest, "size": e.size}
                   for e in a.manifest.contents]  # fmt: skip
        meta = json.loads(a.metadata or "{}")
        out.append({"name": a.name, "type": a.type, "digest": a.digest, "entries": entries,
                    "aliases": sorted(a.aliases), "metadata": meta})  # fmt: skip
    return out
