"""Fetching what W&B recorded for a run into a folder, below ``download``: online with the public
API (``scan_history``: every row), offline from the run's folder and ``.wandb`` file; names
checked, one deadline, failures reported by name."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from flyteplugins.wandb.ext import RecordFormatError, find_run_files, read_run, server_url

from ._context import is_offline
from ._controller import lookup

logger = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
DEFAULT_TIMEOUT = 600.0
REPORT = "download.json"  # the report of every download; it also marks the folder as one


class UnsafeFileName(ValueError):
    """A file name that would be written outside the download folder."""


class DownloadError(RuntimeError):
    """A download that failed (``failed``: each name, and why)."""

    def __init__(self, message: str, failed: Mapping[str, str]) -> None:
        super().__init__(message)
        self.failed = dict(failed)


@dataclass
class DownloadResult:
    """Where the logs were written, what arrived and what did not (name -> reason)."""

    path: Path
    run_ids: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    history_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def merge(self, other: DownloadResult, prefix: str) -> None:
        self.run_ids, self.history_rows = (
            self.run_ids + other.run_ids,
            self.history_rows + other.history_rows,
        )
        self.files += [f"{prefix}/{f}" for f in other.files]
        self.failed.update({f"{prefix}/{k}": v for k, v in other.failed.items()})


def safe_path(root: Path, name: str) -> Path:
    """``root/name``, refusing any name that would resolve outside ``root``."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise UnsafeFileName(f"refused file name {name!r}: empty or contains NUL")
    posix = PurePosixPath(name.replace("\\", "/"))
    windows = PureWindowsPath(name)
    base = root.resolve()
    dest = (base / Path(*posix.parts)).resolve() if posix.parts else base
    if (
        posix.is_absolute()
        or windows.drive
        or windows.is_absolute()
        or ".." in posix.parts
        or (dest != base and base not in dest.parents)
    ):
        raise UnsafeFileName(f"refused file name {name!r}: it would escape the download folder")
    return dest


def run_bounded(
    jobs: Mapping[str, Callable[[], Any]],
    *,
    workers: int,
    deadline: float,
    progress: bool | None = None,
    label: str = "downloading",
) -> dict[str, str]:
    """Run ``jobs`` on ``workers`` threads until ``deadline``; ``{name: why}`` for those that raised
    or did not finish. A ``rich`` progress bar shows with ``progress`` (default: from 20 jobs)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    failed: dict[str, str] = {}
    bar: Any = None
    if (progress if progress is not None else len(jobs) >= 20) and jobs:
        try:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task(label, total=len(jobs))
        except ImportError:
            bar = None
    pool = futures.ThreadPoolExecutor(min(workers, max(1, len(jobs))), "wandb-download")
    running = {pool.submit(job): name for name, job in jobs.items()}
    try:
        for done in futures.as_completed(running, timeout=max(0.0, deadline - time.monotonic())):
            if done.exception() is not None:
                failed[running[done]] = f"{type(done.exception()).__name__}: {done.exception()}"
            if bar is not None:
                bar.advance(task)
    except futures.TimeoutError:
        for job, name in running.items():
            if not job.done():
                failed[name] = "timed out (the download deadline passed)"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if bar is not None:
            bar.stop()
    return failed


def wandb_root(root: str | Path | None = None) -> Path:
    """The folder the wandb client writes run folders into (default: under ``WANDB_DIR``)."""
    base = Path(root) if root is not None else Path(os.environ.get("WANDB_DIR") or os.getcwd())
    return base if base.name == "wandb" or not (base / "wandb").is_dir() else base / "wandb"


def find_offline_run_dir(run_id: str, root: str | Path | None = None) -> Path | None:
    """The newest folder of the run under ``root`` (default ``WANDB_DIR``): ``offline-run-*-<id>``,
    or ``run-*-<id>`` for an online one."""
    base = wandb_root(root)
    matches = [
        p
        for pattern in (f"offline-run-*-{run_id}", f"run-*-{run_id}")
        for p in base.glob(pattern)
        if (p / f"run-{run_id}.wandb").is_file()
    ]
    if not matches:
        return None
    return max(matches, key=lambda p: ((p / f"run-{run_id}.wandb").stat().st_mtime, p.name))


def _read_finished(path: Path, wait: float) -> Any:
    """The run file's record once its exit record is on disk (polled up to ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            record = read_run(path)
            if record.exit_code is not None:
                return record
        except RecordFormatError:
            record = None  # still being written
        if time.monotonic() >= deadline:
            return record if record is not None else read_run(path)
        time.sleep(0.01)


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


@dataclass
class Source:
    """Where one download reads runs from (a server, or offline folders), and its bounds."""

    offline: bool
    deadline: float
    project: str | None = None
    entity: str | None = None
    host: str | None = None
    wandb_dir: str | Path | None = None
    workers: int = DEFAULT_WORKERS
    progress: bool | None = None
    _client: Any = None

    @classmethod
    def make(cls, what: str, value: Any, offline: bool | None, timeout: float, **kw: Any) -> Source:
        """A source for downloading ``value`` (the ``what`` id), both checked."""
        if not isinstance(value, str) or not value:
            raise ValueError(f"{what} must be a non-empty string, got {value!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        offline = is_offline() if offline is None else offline
        return cls(offline=offline, deadline=time.monotonic() + timeout, **kw)

    def api(self) -> Any:
        """The client's public API on the server ``host`` names (default: the client's own)."""
        if self._client is None:
            import wandb

            overrides = {"base_url": server_url({"host": self.host})} if self.host else {}
            timeout = max(1, int(self.deadline - time.monotonic()))
            self._client = wandb.Api(overrides=overrides, timeout=timeout)
        return self._client

    def path(self, id_: str) -> str:
        api = self.api()
        return f"{self.entity or api.default_entity}/{self.project or 'uncategorized'}/{id_}"

    def sweep(self, sweep_id: str) -> tuple[dict[str, Any], list[str]]:
        """What is known of a sweep, and its run ids (offline: from its local controller, else from
        the runs under ``WANDB_DIR`` grouped by it)."""
        if not self.offline:
            sweep = self.api().sweep(self.path(sweep_id))
            runs = [r.id for r in sweep.runs]
            state = getattr(sweep, "state", None)
            info = {"sweep_id": sweep_id, "config": sweep.config, "state": state}
            return {**info, "runs": runs}, runs
        local = lookup(sweep_id)
        if local is not None:
            done = [t.run_id for t in local.trials if t.state in ("finished", "failed")]
            return {"sweep_id": sweep_id, **local.results()}, done
        ids: list[str] = []
        for path in find_run_files(wandb_root(self.wandb_dir)):
            try:
                rec = read_run(path)
            except RecordFormatError:
                continue  # not a run of ours, or one still being written
            if rec.run_id and rec.run_id not in ids and sweep_id in (rec.group, *rec.tags):
                ids.append(rec.run_id)
        if not ids:
            raise FileNotFoundError(
                f"no local sweep {sweep_id!r} in this process and no offline run of it under "
                f"{wandb_root(self.wandb_dir)} (set WANDB_DIR to where its trials were written)"
            )
        return {"sweep_id": sweep_id}, ids


@dataclass(frozen=True)
class Layout:
    """Where a run's download puts its files ("" = at the top), its rows (``.jsonl``: one per line;
    ``.json``: one list; ``None``: none) and the extras (config, raw record)."""

    files: str
    history: str | None
    extras: bool

    def reserved(self, run_id: str) -> set[str]:
        """Names the download writes itself (a run file of that name would clash with them)."""
        names = {REPORT, "summary.json", *([self.history] if self.history else [])}
        return names | ({"config.json", f"run-{run_id}.wandb"} if self.extras else set())

    def write_history(self, target: Path, rows: Iterable[Mapping[str, Any]]) -> int:
        assert self.history is not None
        as_list = not self.history.endswith(".jsonl")
        n = 0
        with (target / self.history).open("w") as fh:
            for row in rows:
                text = json.dumps(dict(row), sort_keys=True, default=str)
                fh.write(("[\n" if n == 0 else ",\n") + text if as_list else text + "\n")
                n += 1
            fh.write(("[" if n == 0 else "") + "\n]\n" if as_list else "")
        return n


STANDARD = Layout(files="files", history="history.jsonl", extras=True)


def compat_layout(include_history: bool) -> Layout:
    """The 2.x layout: the run's files at the top, ``summary.json``, ``metrics_history.json``."""
    history = "metrics_history.json" if include_history else None
    return Layout(files="", history=history, extras=False)


def _fetch(file: Any, root: Path, dest: Path) -> None:
    file.download(root=str(root), replace=True).close()


def fetch_run(run_id: str, target: Path, layout: Layout, src: Source) -> DownloadResult:
    result = DownloadResult(path=target, run_ids=[run_id])
    files_dir = target / layout.files if layout.files else target
    files_dir.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, Callable[[], Any]] = {}
    sources: list[tuple[str, Callable[[Path], Any]]] = []
    if src.offline:
        folder = find_offline_run_dir(run_id, src.wandb_dir)
        if folder is None:
            raise FileNotFoundError(
                f"no offline W&B run {run_id!r} under {wandb_root(src.wandb_dir)} (set WANDB_DIR "
                "to where the run was written)"
            )
        record_file = folder / f"run-{run_id}.wandb"
        record = _read_finished(record_file, min(30.0, max(0.0, src.deadline - time.monotonic())))
        summary, config, rows = dict(record.summary), dict(record.config), record.history
        if layout.extras:
            jobs[record_file.name] = functools.partial(shutil.copy2, record_file, target)
        base = folder / "files"
        files = [p for p in sorted(base.rglob("*")) if p.is_file()]
        sources += [
            (p.relative_to(base).as_posix(), functools.partial(shutil.copy2, p)) for p in files
        ]
    else:
        run = src.api().run(src.path(run_id))
        summary, config = dict(run.summary_metrics), dict(run.config)
        rows = run.scan_history(use_cache=False)  # every row; history() would sample 500
        sources += [(f.name, functools.partial(_fetch, f, files_dir)) for f in run.files()]
    count = [0]
    jobs["summary.json"] = lambda: write_json(target / "summary.json", summary)
    if layout.history:
        jobs[layout.history] = lambda: count.__setitem__(0, layout.write_history(target, rows))
    if layout.extras:
        jobs["config.json"] = lambda: write_json(target / "config.json", config)
    for name, make in sources:
        key = f"{layout.files}/{name}" if layout.files else name
        if not layout.files and name in layout.reserved(run_id):
            result.failed[key] = f"not written: the download writes its own {name} there"
            continue
        try:
            dest = safe_path(files_dir, name)
        except UnsafeFileName as exc:
            result.failed[key] = str(exc)
            continue
        jobs[key] = functools.partial(_write_file, dest, make)
    bounds: dict[str, Any] = {"workers": src.workers, "deadline": src.deadline}
    bounds["progress"] = src.progress
    failed = run_bounded(jobs, **bounds, label=f"W&B run {run_id}")
    result.failed.update(failed)
    result.files = [name for name in jobs if name not in failed]
    result.history_rows = count[0] if layout.history and layout.history not in failed else 0
    return result


def _write_file(dest: Path, make: Callable[[Path], Any]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    make(dest)
    if not dest.is_file():
        raise FileNotFoundError(f"{dest.name} was not written")


def default_download_dir() -> Path:
    """Where downloads go when no folder is given: ``<temp dir>/wandb_runs`` (``/tmp/wandb_runs``,
    as in 2.x); :func:`remove_downloaded_logs` removes what was downloaded there."""
    return Path(tempfile.gettempdir()) / "wandb_runs"


def download_folder(kind: str, id_: str, download_logs: bool | str | os.PathLike[str]) -> Path:
    """Where ``download_logs`` (``True``, or a folder) sends logs: ``wandb-<kind>-<id>`` in that
    folder."""
    if download_logs is False:
        raise ValueError("download_logs=False: there is nothing to download")
    base = default_download_dir() if download_logs is True else Path(os.fspath(download_logs))
    return safe_path(base, f"wandb-{kind}-{id_}")


def target_dir(target: str | os.PathLike[str] | None, default: Path) -> Path:
    path = Path(target) if target is not None else default
    path.mkdir(parents=True, exist_ok=True)
    return path


def finish(result: DownloadResult, strict: bool, what: str) -> DownloadResult:
    """Write the download's report; name what failed (raised in strict mode, else logged)."""
    report = {"runs": result.run_ids, "files": sorted(result.files), "failed": result.failed}
    write_json(result.path / REPORT, {**report, "history_rows": result.history_rows})
    if result.failed:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(result.failed.items()))
        message = f"{len(result.failed)} file(s) of {what} could not be downloaded: {names}"
        if strict:
            raise DownloadError(message, result.failed)
        logger.warning("%s; the rest is in %s", message, result.path)
    return result
