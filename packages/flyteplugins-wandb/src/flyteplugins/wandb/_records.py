"""Read what the wandb client recorded in an offline ``run-<id>.wandb`` file.

wandb 0.31 writes, and ships no reader for, this format:

* a 7-byte header: ``b":W&B"``, the little-endian uint16 ``0xBEE1`` and a version byte;
* then LevelDB log framing: 32 KiB blocks of records, each with a 7-byte header (crc32 uint32,
  length uint16, type byte ``FULL=1``, ``FIRST=2``, ``MIDDLE=3``, ``LAST=4``); a block tail shorter
  than 7 bytes is zero padding;
* every assembled payload is a ``wandb.proto.wandb_internal_pb2.Record``.

:func:`read_run` folds the records into a :class:`RunRecord`: id, project, entity, group, tags,
config, history rows, summary, exit code and whether the run was marked preempting. Tests, the
offline log download and the demo use it to check what W&B really recorded.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b":W&B"
MAGIC_NUMBER = 0xBEE1
HEADER_LENGTH = 7
BLOCK_SIZE = 32 * 1024
RECORD_HEADER_LENGTH = 7
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
    def finished(self) -> bool:
        """Whether the run reached ``finish`` (an exit record was written)."""
        return self.exit_code is not None

    def metric(self, key: str) -> list[Any]:
        """Every logged value of ``key`` (rows without it skipped), in logging order."""
        return [row[key] for row in self.history if key in row]


def iter_payloads(data: bytes) -> Iterator[bytes]:
    """The record payloads of a run file's bytes, checking header, framing and checksums."""
    if len(data) < HEADER_LENGTH or data[:4] != MAGIC:
        raise RecordFormatError("not a W&B run file: missing the ':W&B' header")
    (magic,) = struct.unpack("<H", data[4:6])
    if magic != MAGIC_NUMBER:
        raise RecordFormatError(f"not a W&B run file: magic number {magic:#x}")
    pos = HEADER_LENGTH
    pending: bytearray | None = None
    while pos < len(data):
        room = BLOCK_SIZE - pos % BLOCK_SIZE
        if room < RECORD_HEADER_LENGTH:
            pos += room
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + RECORD_HEADER_LENGTH])
        pos += RECORD_HEADER_LENGTH
        if kind == 0 and length == 0:
            # zero padding written at the end of a block (or of a file still being written)
            pos += room - RECORD_HEADER_LENGTH
            continue
        chunk = data[pos : pos + length]
        if len(chunk) < length:
            return  # a record cut short: the writer was still running or was killed
        pos += length
        expected = zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF
        if crc != expected:
            raise RecordFormatError(f"checksum mismatch in the record at byte {pos - length}")
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = bytearray(chunk)
        elif kind == MIDDLE and pending is not None:
            pending += chunk
        elif kind == LAST and pending is not None:
            yield bytes(pending + chunk)
            pending = None
        else:
            raise RecordFormatError(f"unexpected record type {kind} at byte {pos - length}")


def _key(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _put(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value


def _drop(target: dict[str, Any], path: list[str]) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            return
        target = nxt
    target.pop(path[-1], None)


def _apply_config(config: dict[str, Any], update: Any) -> None:
    for item in update.update:
        _put(config, _key(item), json.loads(item.value_json))
    for item in update.remove:
        _drop(config, _key(item))


def read_run(path: str | Path) -> RunRecord:
    """Parse one ``run-<id>.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    p = Path(path)
    out = RunRecord(path=p)
    for payload in iter_payloads(p.read_bytes()):
        rec = pb.Record()  # type: ignore[attr-defined]
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.run_id = r.run_id or out.run_id
            out.project = r.project or out.project
            out.entity = r.entity or out.entity
            out.group = r.run_group or out.group
            out.job_type = r.job_type or out.job_type
            out.name = r.display_name or out.name
            out.notes = r.notes or out.notes
            if r.tags:
                out.tags = list(r.tags)
            _apply_config(out.config, r.config)
            out.resumed = out.resumed or r.resumed
        elif kind == "config":
            _apply_config(out.config, rec.config)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in rec.history.item:
                value = json.loads(item.value_json)
                path_ = _key(item)
                if len(path_) == 1:
                    row[path_[0]] = value
                else:
                    _put(row, path_, value)
            out.history.append(row)
        elif kind == "summary":
            for item in rec.summary.update:
                _put(out.summary, _key(item), json.loads(item.value_json))
            for item in rec.summary.remove:
                _drop(out.summary, _key(item))
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
    """The artifacts an offline run logged, read from its ``run-<id>.wandb`` file.

    Each: ``name``, ``type``, ``digest``, ``aliases``, ``metadata`` (decoded) and ``entries``
    (``path``, ``ref`` for a reference, ``digest``, ``size``), as the client recorded them.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    out: list[dict[str, Any]] = []
    with open(run_file, "rb") as fh:
        data = fh.read()
    for payload in iter_payloads(data):
        record = pb.Record()  # type: ignore[attr-defined]
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") != "artifact":
            continue
        art = record.artifact
        out.append(
            {
                "name": art.name,
                "type": art.type,
                "digest": art.digest,
                "aliases": sorted(art.aliases),
                "metadata": json.loads(art.metadata) if art.metadata else {},
                "entries": [
                    {"path": e.path, "ref": e.ref, "digest": e.digest, "size": e.size}
                    for e in art.manifest.contents
                ],
            }
        )
    return out
