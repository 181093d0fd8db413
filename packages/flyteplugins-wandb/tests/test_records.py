"""The reader of offline ``run-<id>.wandb`` files, on hand-framed files and on real ones."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2 as pb

from flyteplugins.wandb._records import (
    BLOCK_SIZE,
    FIRST,
    FULL,
    LAST,
    MIDDLE,
    RecordFormatError,
    find_run_files,
    iter_payloads,
    read_run,
    read_runs,
)

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)


def _frame(kind: int, chunk: bytes) -> bytes:
    crc = zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF
    return struct.pack("<IHB", crc, len(chunk), kind) + chunk


def write_log(payloads: list[bytes]) -> bytes:
    """Frame payloads the way the wandb client does (LevelDB log, 32 KiB blocks)."""
    out = bytearray(HEADER)
    for payload in payloads:
        rest = payload
        first = True
        while True:
            room = BLOCK_SIZE - len(out) % BLOCK_SIZE
            if room < 7:
                out += b"\0" * room
                continue
            take = rest[: room - 7]
            rest = rest[len(take) :]
            if first and not rest:
                kind = FULL
            elif first:
                kind = FIRST
            elif rest:
                kind = MIDDLE
            else:
                kind = LAST
            out += _frame(kind, take)
            first = False
            if not rest:
                break
    return bytes(out)


def _records() -> list[bytes]:
    run = pb.Record()
    run.run.run_id = "r1"
    run.run.project = "2024"
    run.run.entity = "team"
    run.run.run_group = "g"
    run.run.tags.extend(["a", "b"])
    item = run.run.config.update.add()
    item.key = "lr"
    item.value_json = "0.1"
    cfg = pb.Record()
    nested = cfg.config.update.add()
    nested.nested_key.extend(["flyte", "attempt"])
    nested.value_json = "2"
    rows = []
    for step in range(3):
        h = pb.Record()
        a = h.history.item.add()
        a.key = "loss"
        a.value_json = json.dumps(1.0 / (step + 1))
        b = h.history.item.add()
        b.nested_key.extend(["blob"])
        b.value_json = json.dumps("x" * 50_000)  # forces FIRST/MIDDLE/LAST framing
        s = h.history.item.add()
        s.key = "_step"
        s.value_json = str(step)
        rows.append(h)
    summary = pb.Record()
    up = summary.summary.update.add()
    up.key = "best"
    up.value_json = "0.25"
    pre = pb.Record()
    pre.preempting.SetInParent()
    ex = pb.Record()
    ex.exit.exit_code = 7
    return [r.SerializeToString() for r in [run, cfg, *rows, summary, pre, ex]]


def test_reads_hand_framed_records_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "run-r1.wandb"
    path.write_bytes(write_log(_records()))
    rec = read_run(path)
    assert rec.run_id == "r1"
    assert rec.project == "2024"
    assert rec.entity == "team"
    assert rec.group == "g"
    assert rec.tags == ["a", "b"]
    assert rec.config == {"lr": 0.1, "flyte": {"attempt": 2}}
    assert rec.metric("loss") == [1.0, 0.5, 1 / 3]
    assert all(len(row["blob"]) == 50_000 for row in rec.history)
    assert rec.summary == {"best": 0.25}
    assert rec.preempting
    assert rec.exit_code == 7
    assert rec.finished


def test_a_record_cut_short_ends_the_file(tmp_path: Path) -> None:
    data = write_log(_records())
    path = tmp_path / "run-r1.wandb"
    path.write_bytes(data[: len(data) - 3])
    rec = read_run(path)
    assert rec.run_id == "r1"
    assert rec.exit_code is None
    assert not rec.finished


def test_damaged_files_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.wandb"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 10)
    with pytest.raises(RecordFormatError, match="header"):
        read_run(path)
    data = bytearray(write_log(_records()[:1]))
    data[-1] ^= 0xFF
    with pytest.raises(RecordFormatError, match="checksum"):
        list(iter_payloads(bytes(data)))
    wrong_magic = b":W&B" + struct.pack("<HB", 0x1234, 0)
    with pytest.raises(RecordFormatError, match="magic"):
        list(iter_payloads(wrong_magic))


def test_reads_what_the_real_client_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    for var in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_SERVICE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb.teardown()
    run = wandb.init(
        project="2024",
        entity="team",
        id="real-1",
        group="grp",
        tags=["t"],
        job_type="train",
        notes="n",
        name="null",
        config={"lr": 0.5, "opt": {"name": "adam"}},
        reinit="create_new",
    )
    for i in range(200):  # well past one 32 KiB block
        run.log({"loss": float(i), "text": "y" * 300, "nested": {"i": i}})
    run.config.update({"late": True})
    run.summary["best"] = -1
    run.finish(exit_code=2)
    wandb.teardown()
    (path,) = find_run_files(tmp_path)
    assert path.stat().st_size > BLOCK_SIZE
    rec = read_run(path)
    assert (rec.run_id, rec.project, rec.entity, rec.group) == ("real-1", "2024", "team", "grp")
    assert (rec.tags, rec.job_type, rec.notes, rec.name) == (["t"], "train", "n", "null")
    assert rec.config == {"lr": 0.5, "opt": {"name": "adam"}, "late": True}
    assert rec.metric("loss") == [float(i) for i in range(200)]
    assert rec.history[7]["nested"] == {"i": 7}
    assert rec.summary["best"] == -1
    assert rec.exit_code == 2
    assert [r.run_id for r in read_runs(tmp_path)] == ["real-1"]
