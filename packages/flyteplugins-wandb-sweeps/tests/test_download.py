"""Log download pieces: file-name safety, the bounded parallel runner, offline packaging."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from flyteplugins.wandb_sweeps import (
    DownloadError,
    UnsafeFileName,
    download_run,
    download_sweep,
    download_wandb_run_dir,
    download_wandb_sweep_dirs,
)
from flyteplugins.wandb_sweeps._fetch import find_offline_run_dir, run_bounded, safe_path

BAD_NAMES = [
    "../x",
    "a/../../x",
    "/etc/passwd",
    "..",
    "",
    "a\x00b",
    "C:\\Windows\\x",
    "C:x",
    "\\\\server\\share\\x",
    "..\\..\\x",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_escaping_the_target_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeFileName, match="refused file name"):
        safe_path(tmp_path, name)


def test_symlinked_folder_escape_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to(tmp_path.parent)
    with pytest.raises(UnsafeFileName):
        safe_path(tmp_path / "inside", "link/x.txt")


@pytest.mark.parametrize("name", ["a.txt", "sub/dir/b.json", "..a", "a..b/c", "media/x y.png"])
def test_ordinary_names_stay_inside(tmp_path: Path, name: str) -> None:
    dest = safe_path(tmp_path, name)
    assert tmp_path.resolve() in dest.parents


def test_runner_reports_failures_by_name_and_runs_in_parallel() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    def bad() -> None:
        raise OSError("disk full")

    jobs = {f"f{i}": job for i in range(16)}
    jobs["broken"] = bad
    failed = run_bounded(jobs, workers=8, deadline=time.monotonic() + 30, progress=False)
    assert failed == {"broken": "OSError: disk full"}
    assert peak > 1


def test_runner_stops_at_the_deadline() -> None:
    stop = threading.Event()
    jobs = {"slow": lambda: stop.wait(30), "fast": lambda: None}
    start = time.monotonic()
    failed = run_bounded(jobs, workers=2, deadline=time.monotonic() + 0.5, progress=True)
    stop.set()
    assert time.monotonic() - start < 5
    assert set(failed) == {"slow"}
    assert "timed out" in failed["slow"]
    with pytest.raises(ValueError, match="workers"):
        run_bounded({}, workers=0, deadline=time.monotonic())


def _offline_run(root: Path, monkeypatch: pytest.MonkeyPatch, run_id: str) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(root))
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb.teardown()
    run = wandb.init(project="unit", id=run_id, reinit="create_new", config={"lr": 0.1})
    for i in range(25):
        run.log({"loss": float(i)})
    (Path(run.dir) / "notes").mkdir()
    (Path(run.dir) / "notes" / "n.txt").write_text("hello")
    run.finish()


def test_offline_run_is_packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline_run(tmp_path, monkeypatch, "unit1")
    assert find_offline_run_dir("unit1") is not None
    result = download_run("unit1", target=tmp_path / "out")
    assert result.ok and result.history_rows == 25
    out = tmp_path / "out"
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [float(i) for i in range(25)]
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.1}
    assert (out / "files" / "notes" / "n.txt").read_text() == "hello"
    report = json.loads((out / "download.json").read_text())
    assert "files/notes/n.txt" in report["files"]


def test_missing_offline_run_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no offline W&B run 'nope'"):
        download_run("nope", offline=True, target=tmp_path / "o")
    with pytest.raises(ValueError, match="timeout"):
        download_run("x", offline=True, timeout=0)


def test_strict_mode_raises_with_every_failed_name() -> None:
    err = DownloadError("2 files", {"a": "x", "b": "y"})
    assert err.failed == {"a": "x", "b": "y"}


def test_unknown_offline_sweep_and_run_both_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 22: the sweep returned [] silently while the same call for a run raised
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    with pytest.raises(DownloadError, match="'nope'") as run_error:
        download_wandb_run_dir("nope", tmp_path / "run", offline=True)
    with pytest.raises(DownloadError, match="no local sweep 'nope'") as sweep_error:
        download_wandb_sweep_dirs("nope", tmp_path / "sweep", offline=True)
    assert "WANDB_DIR" in str(run_error.value) and "WANDB_DIR" in str(sweep_error.value)
    with pytest.raises(FileNotFoundError, match="no local sweep 'nope'"):
        download_sweep("nope", offline=True, target=tmp_path / "s")
