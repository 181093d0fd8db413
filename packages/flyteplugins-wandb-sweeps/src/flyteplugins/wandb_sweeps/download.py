"""Download what W&B recorded for a run or a sweep: every file, the full history, the summary.

Online, the public API lists the run's files and each one is fetched in parallel; the history is
read with ``scan_history`` (every row, page by page; never the sampled ``history()``, and never a
pandas DataFrame, so it behaves the same with or without pandas installed). Offline, the run's
folder under ``WANDB_DIR`` is packaged into the same layout, its history and summary read from the
``.wandb`` file with the plugin's reader::

    <target>/
      files/...            every file of the run (online: as uploaded; offline: the run's files/)
      history.jsonl        one JSON object per logged row, in order
      summary.json         the run's summary
      config.json          the run's config
      run-<id>.wandb       (offline only) the run's raw record file
      download.json        what was fetched and what failed, and why

A sweep's download holds ``sweep.json`` and one such folder per trial under ``runs/<run id>/``.

Every file name is checked before anything is written: a name that would land outside the target
folder (absolute, ``..``, a drive) is refused and reported. The whole download is bounded by a
deadline; a file that fails or runs past it is reported by name, and the download only raises
(:class:`DownloadError`) in ``strict`` mode, so a task whose training succeeded is not failed by a
flaky download. :func:`after_task` is what ``@wandb_init``/``@wandb_sweep`` call with
``download_logs=True``: it runs the download inside a ``flyte.trace`` function that returns a
``flyte.io.Dir``, so the logs show up in the Flyte UI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import flyte
from flyte.io import Dir

logger = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
DEFAULT_TIMEOUT = 600.0
PROGRESS_THRESHOLD = 20
"""Show a progress bar (when ``progress`` is left to ``None``) from this many files on."""


class UnsafeFileName(ValueError):
    """A file name that would be written outside the download folder."""


class DownloadError(RuntimeError):
    """Raised in strict mode when any file could not be downloaded (names them all)."""

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
        self.run_ids += other.run_ids
        self.files += [f"{prefix}/{f}" for f in other.files]
        self.failed.update({f"{prefix}/{k}": v for k, v in other.failed.items()})
        self.history_rows += other.history_rows


def safe_path(root: Path, name: str) -> Path:
    """``root/name``, refusing any name that would resolve outside ``root``."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise UnsafeFileName(f"refused file name {name!r}: empty or contains NUL")
    posix = PurePosixPath(name.replace("\\", "/"))
    if (
        posix.is_absolute()
        or PureWindowsPath(name).drive
        or PureWindowsPath(name).is_absolute()
        or ".." in posix.parts
    ):
        raise UnsafeFileName(f"refused file name {name!r}: it would escape the download folder")
    base = root.resolve()
    dest = (base / Path(*posix.parts)).resolve()
    if dest != base and base not in dest.parents:
        raise UnsafeFileName(f"refused file name {name!r}: it would escape the download folder")
    return dest


# -- a bounded parallel runner ------------------------------------------------------------------


class _Progress:
    """A rich progress bar when asked for and available, else nothing."""

    def __init__(self, total: int, label: str, enabled: bool | None) -> None:
        self._bar: Any = None
        self._task: Any = None
        show = total >= PROGRESS_THRESHOLD if enabled is None else enabled
        if not show or total == 0:
            return
        try:
            from rich.progress import Progress
        except ImportError:
            return
        self._bar = Progress(transient=True)
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def run_bounded(
    jobs: Mapping[str, Callable[[], Any]],
    *,
    workers: int,
    deadline: float,
    progress: bool | None = None,
    label: str = "downloading",
) -> dict[str, str]:
    """Run ``jobs`` (name -> callable) on ``workers`` daemon threads until ``deadline``.

    Returns ``{name: reason}`` for every job that raised or had not finished by the deadline.
    Daemon threads are used so a download stuck past its deadline never blocks the process from
    exiting.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    pending: queue.Queue[str] = queue.Queue()
    for name in jobs:
        pending.put(name)
    failed: dict[str, str] = {}
    done: set[str] = set()
    lock = threading.Condition()
    bar = _Progress(len(jobs), label, progress)

    def worker() -> None:
        while True:
            try:
                name = pending.get_nowait()
            except queue.Empty:
                return
            if time.monotonic() > deadline:
                error: str | None = "not started before the download deadline"
            else:
                try:
                    jobs[name]()
                    error = None
                except Exception as exc:  # reported per file, never swallowed
                    error = f"{type(exc).__name__}: {exc}"
            with lock:
                if error is not None:
                    failed[name] = error
                done.add(name)
                bar.advance()
                lock.notify_all()

    threads = [
        threading.Thread(target=worker, daemon=True, name=f"wandb-download-{i}")
        for i in range(min(workers, max(1, len(jobs))))
    ]
    try:
        for t in threads:
            t.start()
        with lock:
            while len(done) < len(jobs):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                lock.wait(timeout=min(left, 0.5))
            for name in jobs:
                if name not in done:
                    failed[name] = "timed out (the download deadline passed)"
    finally:
        bar.close()
    return failed


# -- where runs live ---------------------------------------------------------------------------


def _api(host: str | None, timeout: float) -> Any:
    import wandb

    from flyteplugins.wandb.ext import server_url

    overrides: dict[str, Any] = {}
    if host:
        overrides["base_url"] = server_url({"host": host})
    return wandb.Api(overrides=overrides, timeout=max(1, int(timeout)))


def wandb_root() -> Path:
    """The folder the wandb client writes ``offline-run-*`` folders into."""
    base = os.environ.get("WANDB_DIR") or os.getcwd()
    return Path(base) / "wandb"


def find_offline_run_dir(run_id: str, root: str | Path | None = None) -> Path | None:
    """The newest ``offline-run-*-<run_id>`` folder under ``root`` (default: ``WANDB_DIR``)."""
    base = Path(root) if root is not None else wandb_root()
    if base.name != "wandb" and (base / "wandb").is_dir():
        base = base / "wandb"
    # offline runs write offline-run-<time>-<id>; online ones (e.g. a local-controller trial
    # logged to a server) run-<time>-<id>; both hold the same run-<id>.wandb
    matches = [
        p
        for pattern in (f"offline-run-*-{run_id}", f"run-*-{run_id}")
        for p in base.glob(pattern)
        if p.is_dir() and (p / f"run-{run_id}.wandb").is_file()
    ]
    if not matches:
        return None
    return max(matches, key=lambda p: ((p / f"run-{run_id}.wandb").stat().st_mtime, p.name))


def read_finished(path: Path, wait: float) -> Any:
    """The plugin's record of a run file, once its exit record is on disk.

    ``run.finish()`` can return before the client's writer flushed the last records (seen with
    concurrent runs in one process), so poll for up to ``wait`` seconds for the exit record.
    """
    from flyteplugins.wandb.ext import RecordFormatError, read_run

    deadline = time.monotonic() + wait
    while True:
        try:
            record = read_run(path)
            if record.exit_code is not None:
                return record
        except RecordFormatError:
            record = None  # a record still being written
        if time.monotonic() >= deadline:
            return record if record is not None else read_run(path)
        time.sleep(0.01)


def _is_offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    from flyteplugins.wandb.ext import effective_mode

    from ._context import run_settings

    try:
        mode = run_settings().get("mode")
    except ValueError:
        mode = None
    return effective_mode(mode) in ("offline", "disabled")


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def _write_history(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    n = 0
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(dict(row), sort_keys=True, default=str) + "\n")
            n += 1
    return n


def _write_history_list(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """The rows as one JSON list (the 2.x ``metrics_history.json``), written as they come."""
    n = 0
    with path.open("w") as fh:
        fh.write("[")
        for row in rows:
            fh.write(("," if n else "") + "\n" + json.dumps(dict(row), sort_keys=True, default=str))
            n += 1
        fh.write("\n]\n")
    return n


REPORT = "download.json"
"""The report every download writes into its folder; it also marks the folder as a download."""


@dataclass(frozen=True)
class _Layout:
    """Where a run's download puts what: its files, its history, the extras."""

    files: str
    """Folder of the run's own files inside the download ("" = the download folder itself)."""
    history: str | None
    """File of the history rows (``.jsonl``: one row per line; ``.json``: one list); None: none."""
    extras: bool
    """Also ``config.json`` and, offline, the raw ``run-<id>.wandb``."""

    def files_dir(self, target: Path) -> Path:
        return target / self.files if self.files else target

    def key(self, name: str) -> str:
        return f"{self.files}/{name}" if self.files else name

    def own_names(self, run_id: str) -> set[str]:
        """Names the download writes itself (a run file of that name would clash with them)."""
        names = {REPORT, "summary.json"}
        if self.history:
            names.add(self.history)
        if self.extras:
            names |= {"config.json", f"run-{run_id}.wandb"}
        return names

    def write_history(self, target: Path, rows: Iterable[Mapping[str, Any]]) -> int:
        assert self.history is not None
        path = target / self.history
        if self.history.endswith(".jsonl"):
            return _write_history(path, rows)
        return _write_history_list(path, rows)


STANDARD = _Layout(files="files", history="history.jsonl", extras=True)
"""The layout of :func:`download_run` and of ``download_logs``: see the module's docstring."""


def _compat_layout(include_history: bool) -> _Layout:
    """The 2.x layout: the run's files at the top, ``summary.json``, ``metrics_history.json``."""
    return _Layout(
        files="", history="metrics_history.json" if include_history else None, extras=False
    )


def _add_file_job(
    result: DownloadResult,
    jobs: dict[str, Callable[[], Any]],
    layout: _Layout,
    target: Path,
    run_id: str,
    name: str,
    job: Callable[[Path], Any],
) -> None:
    """Queue ``job(dest)`` for the run file ``name``, or report why it cannot be written."""
    key = layout.key(name)
    if not layout.files and name in layout.own_names(run_id):
        result.failed[key] = f"not written: the download writes its own {name} there"
        return
    try:
        dest = safe_path(layout.files_dir(target), name)
    except UnsafeFileName as exc:
        result.failed[key] = str(exc)
        return
    jobs[key] = lambda: job(dest)


def _finish(result: DownloadResult, strict: bool, what: str) -> DownloadResult:
    _write_json(
        result.path / REPORT,
        {
            "runs": result.run_ids,
            "files": sorted(result.files),
            "failed": result.failed,
            "history_rows": result.history_rows,
        },
    )
    if result.failed:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(result.failed.items()))
        message = f"{len(result.failed)} file(s) of {what} could not be downloaded: {names}"
        if strict:
            raise DownloadError(message, result.failed)
        logger.warning("%s; the rest is in %s", message, result.path)
    return result


# -- one run -------------------------------------------------------------------------------------


def _online_run(
    run_id: str,
    target: Path,
    *,
    project: str | None,
    entity: str | None,
    host: str | None,
    workers: int,
    deadline: float,
    progress: bool | None,
    api: Any = None,
    layout: _Layout = STANDARD,
) -> DownloadResult:
    api = api or _api(host, max(1.0, deadline - time.monotonic()))
    entity = entity or api.default_entity
    project = project or "uncategorized"
    run = api.run(f"{entity}/{project}/{run_id}")
    result = DownloadResult(path=target, run_ids=[run_id])
    files_dir = layout.files_dir(target)
    files_dir.mkdir(parents=True, exist_ok=True)
    rows = [0]

    def history() -> None:
        # scan_history pages through every row; history() would sample 500 of them
        rows[0] = layout.write_history(target, run.scan_history(use_cache=False))

    jobs: dict[str, Callable[[], Any]] = {
        "summary.json": lambda: _write_json(target / "summary.json", dict(run.summary_metrics)),
    }
    if layout.history:
        jobs[layout.history] = history
    if layout.extras:
        jobs["config.json"] = lambda: _write_json(target / "config.json", dict(run.config))
    for f in run.files():

        def fetch(dest: Path, f: Any = f) -> None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            f.download(root=str(files_dir), replace=True).close()
            if not dest.is_file():
                raise FileNotFoundError(f"{dest.name} was not written")

        _add_file_job(result, jobs, layout, target, run_id, f.name, fetch)
    failed = run_bounded(
        jobs, workers=workers, deadline=deadline, progress=progress, label=f"W&B run {run_id}"
    )
    result.failed.update(failed)
    result.files = [name for name in jobs if name not in failed]
    result.history_rows = rows[0] if layout.history and layout.history not in failed else 0
    return result


def _offline_run(
    run_id: str,
    target: Path,
    *,
    root: str | Path | None,
    workers: int,
    deadline: float,
    progress: bool | None,
    layout: _Layout = STANDARD,
) -> DownloadResult:
    folder = find_offline_run_dir(run_id, root)
    if folder is None:
        raise FileNotFoundError(
            f"no offline W&B run {run_id!r} under {Path(root) if root else wandb_root()} "
            "(set WANDB_DIR to where the run was written)"
        )
    result = DownloadResult(path=target, run_ids=[run_id])
    record_file = folder / f"run-{run_id}.wandb"
    record = read_finished(record_file, min(30.0, max(0.0, deadline - time.monotonic())))
    layout.files_dir(target).mkdir(parents=True, exist_ok=True)
    jobs: dict[str, Callable[[], Any]] = {
        "summary.json": lambda: _write_json(target / "summary.json", record.summary),
    }
    if layout.history:
        jobs[layout.history] = lambda: layout.write_history(target, record.history)
    if layout.extras:
        jobs[record_file.name] = lambda: shutil.copy2(record_file, target / record_file.name)
        jobs["config.json"] = lambda: _write_json(target / "config.json", record.config)
    source = folder / "files"
    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if not path.is_file():
            continue

        def copy(dest: Path, path: Path = path) -> None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)

        name = path.relative_to(source).as_posix()
        _add_file_job(result, jobs, layout, target, run_id, name, copy)
    failed = run_bounded(
        jobs, workers=workers, deadline=deadline, progress=progress, label=f"W&B run {run_id}"
    )
    result.failed.update(failed)
    result.files = [name for name in jobs if name not in failed]
    ok = layout.history and layout.history not in failed
    result.history_rows = len(record.history) if ok else 0
    return result


def default_download_dir() -> Path:
    """Where downloads go when no folder is given: ``<temp dir>/wandb_runs``.

    The system's temporary folder as Python finds it (``TMPDIR``, else ``/tmp`` on Linux), so by
    default ``/tmp/wandb_runs``, the folder 2.x used. Nothing in it is removed automatically:
    :func:`remove_downloaded_logs` removes what the plugin downloaded there.
    """
    return Path(tempfile.gettempdir()) / "wandb_runs"


def download_folder(kind: str, id_: str, download_logs: bool | str | os.PathLike[str]) -> Path:
    """The folder the ``download_logs`` setting sends a run's (or sweep's) logs to.

    ``True``: ``<default_download_dir()>/wandb-<kind>-<id>``; a folder ``DIR``:
    ``DIR/wandb-<kind>-<id>``, so a task's run, its children's and a sweep's never mix.
    """
    if download_logs is False:
        raise ValueError("download_logs=False: there is nothing to download")
    base = default_download_dir() if download_logs is True else Path(os.fspath(download_logs))
    return safe_path(base, f"wandb-{kind}-{id_}")


def _target(target: str | os.PathLike[str] | None, default: Path) -> Path:
    path = Path(target) if target is not None else default
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_run_args(what: str, value: Any, timeout: float) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")


def _one_run(
    run_id: str,
    out: Path,
    *,
    project: str | None,
    entity: str | None,
    host: str | None,
    offline: bool | None,
    wandb_dir: str | Path | None,
    workers: int,
    deadline: float,
    progress: bool | None,
    layout: _Layout,
    api: Any = None,
) -> DownloadResult:
    if _is_offline(offline):
        return _offline_run(
            run_id,
            out,
            root=wandb_dir,
            workers=workers,
            deadline=deadline,
            progress=progress,
            layout=layout,
        )
    return _online_run(
        run_id,
        out,
        project=project,
        entity=entity,
        host=host,
        workers=workers,
        deadline=deadline,
        progress=progress,
        api=api,
        layout=layout,
    )


def download_run(
    run_id: str,
    *,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    target: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    wandb_dir: str | Path | None = None,
    workers: int = DEFAULT_WORKERS,
    timeout: float = DEFAULT_TIMEOUT,
    strict: bool = False,
    progress: bool | None = None,
) -> DownloadResult:
    """Download every file, the full history and the summary of one W&B run into ``target``.

    Online (the default unless ``WANDB_MODE``/``wandb_config(mode=...)`` says offline) the run
    ``entity/project/run_id`` is read from the W&B server at ``host``. Offline, the run's folder
    under ``wandb_dir`` (default ``WANDB_DIR``) is packaged instead. ``target`` defaults to
    ``<default_download_dir()>/wandb-run-<run_id>``. Files are fetched on ``workers`` threads,
    all within ``timeout`` seconds; failures are reported in the result (and ``download.json``)
    or, with ``strict=True``, raised as :class:`DownloadError`.
    """
    _check_run_args("run_id", run_id, timeout)
    deadline = time.monotonic() + timeout
    out = _target(target, download_folder("run", run_id, True))
    result = _one_run(
        run_id,
        out,
        project=project,
        entity=entity,
        host=host,
        offline=offline,
        wandb_dir=wandb_dir,
        workers=workers,
        deadline=deadline,
        progress=progress,
        layout=STANDARD,
    )
    return _finish(result, strict, f"W&B run {run_id!r}")


# -- a sweep -------------------------------------------------------------------------------------


def _offline_sweep_runs(sweep_id: str, root: str | Path | None) -> list[str]:
    """Run ids of the offline trials of a local sweep: from its controller, else from disk."""
    from ._controller import lookup

    sweep = lookup(sweep_id)
    if sweep is not None:
        return [t.run_id for t in sweep.trials if t.state in ("finished", "failed")]
    from flyteplugins.wandb.ext import RecordFormatError, find_run_files, read_run

    base = Path(root) if root is not None else wandb_root()
    ids: list[str] = []
    for path in find_run_files(base):
        try:
            rec = read_run(path)
        except RecordFormatError:
            continue  # not a run of ours, or one still being written
        in_sweep = rec.group == sweep_id or sweep_id in rec.tags
        if rec.run_id and in_sweep and rec.run_id not in ids:
            ids.append(rec.run_id)
    return ids


def _sweep_runs(
    sweep_id: str,
    out: Path,
    *,
    project: str | None,
    entity: str | None,
    host: str | None,
    offline: bool | None,
    wandb_dir: str | Path | None,
    workers: int,
    deadline: float,
    timeout: float,
    progress: bool | None,
    layout: _Layout,
    run_folder: Callable[[str], Path],
) -> tuple[DownloadResult, dict[str, Any], list[tuple[str, DownloadResult]]]:
    """Every trial of a sweep, each into ``run_folder(run_id)``.

    Returns the merged result, what is known of the sweep (for ``sweep.json``) and each trial's
    own result; a trial that cannot be downloaded at all is reported under ``runs/<id>``.
    """
    result = DownloadResult(path=out)
    info: dict[str, Any] = {"sweep_id": sweep_id}
    api: Any = None
    if _is_offline(offline):
        from ._controller import lookup

        local = lookup(sweep_id)
        if local is not None:
            info.update(local.results())
        run_ids = _offline_sweep_runs(sweep_id, wandb_dir)
        offline = True
    else:
        api = _api(host, timeout)
        entity = entity or api.default_entity
        project = project or "uncategorized"
        sweep = api.sweep(f"{entity}/{project}/{sweep_id}")
        info.update({"config": sweep.config, "state": getattr(sweep, "state", None)})
        run_ids = [r.id for r in sweep.runs]
        info["runs"] = run_ids
        offline = False
    parts: list[tuple[str, DownloadResult]] = []
    for run_id in run_ids:
        try:
            sub = run_folder(run_id)
            sub.mkdir(parents=True, exist_ok=True)
            part = _one_run(
                run_id,
                sub,
                project=project,
                entity=entity,
                host=host,
                offline=offline,
                wandb_dir=wandb_dir,
                workers=workers,
                deadline=deadline,
                progress=progress,
                layout=layout,
                api=api,
            )
        except Exception as exc:
            result.failed[f"runs/{run_id}"] = f"{type(exc).__name__}: {exc}"
            continue
        parts.append((run_id, part))
        result.merge(part, f"runs/{run_id}")
    return result, info, parts


def download_sweep(
    sweep_id: str,
    *,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    target: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    wandb_dir: str | Path | None = None,
    workers: int = DEFAULT_WORKERS,
    timeout: float = DEFAULT_TIMEOUT,
    strict: bool = False,
    progress: bool | None = None,
) -> DownloadResult:
    """Download the logs of every run of a sweep (``runs/<run id>/``) and ``sweep.json``.

    Online the sweep and its runs come from the W&B server; offline (a sweep run by the local
    controller) its trials' run folders are packaged. ``target`` defaults to
    ``<default_download_dir()>/wandb-sweep-<sweep_id>``. Same bounds and failure reporting as
    :func:`download_run`.
    """
    _check_run_args("sweep_id", sweep_id, timeout)
    deadline = time.monotonic() + timeout
    out = _target(target, download_folder("sweep", sweep_id, True))
    result, info, _ = _sweep_runs(
        sweep_id,
        out,
        project=project,
        entity=entity,
        host=host,
        offline=offline,
        wandb_dir=wandb_dir,
        workers=workers,
        deadline=deadline,
        timeout=timeout,
        progress=progress,
        layout=STANDARD,
        run_folder=lambda run_id: safe_path(out / "runs", run_id),
    )
    _write_json(out / "sweep.json", info)
    return _finish(result, strict, f"W&B sweep {sweep_id!r}")


# -- the 2.x functions ---------------------------------------------------------------------------


def _where(
    project: str | None, entity: str | None, run: Any = None
) -> tuple[str | None, str | None]:
    """Project and entity: given, else the current run's, else the ``wandb_config`` context's."""
    from ._context import run_settings

    context = run_settings()
    project = project or getattr(run, "project", None) or context.get("project")
    entity = entity or getattr(run, "entity", None) or context.get("entity")
    return project, entity


def download_wandb_run_dir(
    run_id: str | None = None,
    path: str | os.PathLike[str] | None = None,
    include_history: bool = True,
    *,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    offline: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Download one run's files, summary and history into a folder; return the folder.

    The 2.x function. ``run_id`` defaults to the current ``@wandb_init`` run; ``path`` to
    ``<default_download_dir()>/<run_id>`` (``/tmp/wandb_runs/<run_id>``). The folder holds the
    run's files at its top, ``summary.json``, ``metrics_history.json`` (every logged row, as one
    JSON list; left out with ``include_history=False``) and ``download.json``. Project and entity
    come from the arguments, the current run or the ``wandb_config`` context. Offline runs
    (``WANDB_MODE=offline``) are packaged from their local folder. Raises :class:`DownloadError`
    (a ``RuntimeError``) naming every file that could not be downloaded.
    """
    from flyteplugins.wandb import get_wandb_run

    run = get_wandb_run()
    if run_id is None:
        if run is None:
            raise RuntimeError(
                "download_wandb_run_dir() needs a run_id outside a @wandb_init task or function "
                "(there is no current run to default to)"
            )
        run_id = str(run.id)
    elif run is not None and str(run.id) != run_id:
        run = None
    _check_run_args("run_id", run_id, timeout)
    project, entity = _where(project, entity, run)
    out = _target(path, safe_path(default_download_dir(), run_id))
    try:
        result = _one_run(
            run_id,
            out,
            project=project,
            entity=entity,
            host=host,
            offline=offline,
            wandb_dir=None,
            workers=DEFAULT_WORKERS,
            deadline=time.monotonic() + timeout,
            progress=None,
            layout=_compat_layout(include_history),
        )
    except Exception as exc:  # the run itself could not be read: one error type, as in 2.x
        raise DownloadError(
            f"W&B run {run_id!r} could not be downloaded into {out}: {type(exc).__name__}: {exc}",
            {run_id: str(exc)},
        ) from exc
    return str(_finish(result, True, f"W&B run {run_id!r}").path)


def download_wandb_sweep_dirs(
    sweep_id: str | None = None,
    base_path: str | os.PathLike[str] | None = None,
    include_history: bool = True,
    *,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    offline: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """Download every run of a sweep, each into ``<base_path>/<run_id>``; return those folders.

    The 2.x function. ``sweep_id`` defaults to the current ``@wandb_sweep`` sweep; ``base_path``
    to :func:`default_download_dir`. Each folder is laid out as by
    :func:`download_wandb_run_dir`. A run that fails is logged with the reason and left out of
    the result; when every run fails (or the sweep cannot be read) :class:`DownloadError` is
    raised.
    """
    from ._decorator import get_wandb_sweep_id

    sweep_id = sweep_id or get_wandb_sweep_id()
    if sweep_id is None:
        raise RuntimeError(
            "download_wandb_sweep_dirs() needs a sweep_id outside a @wandb_sweep task "
            "(there is no current sweep to default to)"
        )
    _check_run_args("sweep_id", sweep_id, timeout)
    project, entity = _where(project, entity)
    base = _target(base_path, default_download_dir())
    try:
        result, _, parts = _sweep_runs(
            sweep_id,
            base,
            project=project,
            entity=entity,
            host=host,
            offline=offline,
            wandb_dir=None,
            workers=DEFAULT_WORKERS,
            deadline=time.monotonic() + timeout,
            timeout=timeout,
            progress=None,
            layout=_compat_layout(include_history),
            run_folder=lambda run_id: safe_path(base, run_id),
        )
    except Exception as exc:  # the sweep itself could not be read
        raise DownloadError(
            f"W&B sweep {sweep_id!r} could not be read: {type(exc).__name__}: {exc}",
            {sweep_id: str(exc)},
        ) from exc
    # a trial that could not be read at all is under runs/<id>; one with missing files is reported
    failed = {k: v for k, v in result.failed.items() if k.count("/") == 1}
    done = []
    for run_id, part in parts:
        _finish(part, False, f"W&B run {run_id!r} of sweep {sweep_id!r}")
        if part.ok:
            done.append(str(part.path))
        else:
            failed[f"runs/{run_id}"] = "could not download " + ", ".join(sorted(part.failed))
    if failed and not done:
        raise DownloadError(
            f"no run of W&B sweep {sweep_id!r} could be downloaded: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(failed.items())),
            failed,
        )
    if failed:
        logger.warning(
            "%d of %d runs of W&B sweep %r could not be downloaded: %s",
            len(failed),
            len(failed) + len(done),
            sweep_id,
            ", ".join(sorted(failed)),
        )
    return done


@flyte.trace
async def download_wandb_run_logs(
    run_id: str,
    *,
    path: str | None = None,
    include_history: bool = True,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    offline: bool | None = None,
) -> Dir:
    """:func:`download_wandb_run_dir` as a traced step: its folder shows in the Flyte UI.

    The 2.x function (``await download_wandb_run_logs(run_id)`` inside an async task).
    """
    folder = await asyncio.to_thread(
        download_wandb_run_dir,
        run_id,
        path,
        include_history,
        project=project,
        entity=entity,
        host=host,
        offline=offline,
    )
    return await Dir.from_local(folder)


@flyte.trace
async def download_wandb_sweep_logs(
    sweep_id: str,
    *,
    base_path: str | None = None,
    include_history: bool = True,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    offline: bool | None = None,
) -> Dir:
    """:func:`download_wandb_sweep_dirs` as a traced step, returning the sweep's folder.

    The 2.x function. ``base_path`` defaults to ``<default_download_dir()>/wandb-sweep-<id>``,
    so the returned folder holds this sweep's runs only.
    """
    base = base_path if base_path is not None else str(download_folder("sweep", sweep_id, True))
    await asyncio.to_thread(
        download_wandb_sweep_dirs,
        sweep_id,
        base,
        include_history,
        project=project,
        entity=entity,
        host=host,
        offline=offline,
    )
    return await Dir.from_local(base)


# -- cleaning up ---------------------------------------------------------------------------------


def remove_downloaded_logs(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the downloads the plugin wrote under ``path`` (default: :func:`default_download_dir`).

    Only folders directly under ``path`` that a download wrote (those holding its
    ``download.json``, or a sweep download's ``runs/``/run folders) are removed; anything else
    there is left alone. Returns the folders removed.
    """
    base = Path(path) if path is not None else default_download_dir()
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for child in sorted(base.iterdir()):
        if child.is_symlink() or not child.is_dir():
            continue
        if _is_download(child) or (
            child.name.startswith("wandb-sweep-")
            and any(_is_download(sub) for sub in child.iterdir() if sub.is_dir())
        ):
            shutil.rmtree(child)
            removed.append(child)
    return removed


def _is_download(folder: Path) -> bool:
    return (folder / REPORT).is_file()


# -- the hook the decorators call ----------------------------------------------------------------


def after_task(
    *,
    run_id: str | None = None,
    sweep_id: str | None = None,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    offline: bool | None = None,
    strict: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    download_logs: bool | str | os.PathLike[str] = True,
) -> Any:
    """Download a finished run's (or sweep's) logs through a ``flyte.trace`` function.

    What ``@wandb_init(download_logs=...)`` and ``@wandb_sweep(download_logs=...)`` call after
    the task body returned (synchronous tasks; async tasks use :func:`after_task_async`); the
    logs go to :func:`download_folder` of ``download_logs``, which is printed. Returns the
    ``flyte.io.Dir`` of the logs, or ``None`` when the download failed and ``strict`` is off
    (the failure is logged with the names of the files).
    """
    args = _hook_args(run_id, sweep_id, project, entity, host, offline, strict, timeout)
    args["target"] = str(download_folder(args["kind"], args["id_"], download_logs))
    try:
        out = download_wandb_logs(**args)
    except Exception as exc:
        return _hook_failed(exc, args)
    _say_where(args)
    return out


async def after_task_async(
    *,
    run_id: str | None = None,
    sweep_id: str | None = None,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    offline: bool | None = None,
    strict: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    download_logs: bool | str | os.PathLike[str] = True,
) -> Any:
    """:func:`after_task` for async tasks (a sync trace cannot be called from an async task)."""
    args = _hook_args(run_id, sweep_id, project, entity, host, offline, strict, timeout)
    args["target"] = str(download_folder(args["kind"], args["id_"], download_logs))
    try:
        out = await download_wandb_logs_async(**args)
    except Exception as exc:
        return _hook_failed(exc, args)
    _say_where(args)
    return out


def _say_where(args: Mapping[str, Any]) -> None:
    print(
        f"W&B logs of {args['kind']} {args['id_']} downloaded to {Path(args['target']).resolve()}",
        file=sys.stderr,
        flush=True,
    )


def _hook_args(
    run_id: str | None,
    sweep_id: str | None,
    project: str | None,
    entity: str | None,
    host: str | None,
    offline: bool | None,
    strict: bool,
    timeout: float,
) -> dict[str, Any]:
    if (run_id is None) == (sweep_id is None):
        raise ValueError("after_task needs exactly one of run_id or sweep_id")
    return {
        "kind": "sweep" if sweep_id else "run",
        "id_": str(sweep_id or run_id),
        "project": project,
        "entity": entity,
        "host": host,
        "offline": _is_offline(offline),
        "strict": strict,
        "timeout": timeout,
    }


def _hook_failed(exc: Exception, args: dict[str, Any]) -> None:
    if args["strict"]:
        raise exc
    logger.warning(
        "downloading the W&B logs of %s %s into %s failed: %s",
        args["kind"],
        args["id_"],
        args["target"],
        exc,
    )
    return None


def _download(
    kind: str,
    id_: str,
    project: str | None,
    entity: str | None,
    host: str | None,
    offline: bool,
    strict: bool,
    timeout: float,
    target: str,
) -> DownloadResult:
    fn = download_sweep if kind == "sweep" else download_run
    return fn(
        id_,
        project=project,
        entity=entity,
        host=host,
        offline=offline,
        strict=strict,
        timeout=timeout,
        target=target,
    )


@flyte.trace
def download_wandb_logs(
    kind: str,
    id_: str,
    project: str | None,
    entity: str | None,
    host: str | None,
    offline: bool,
    strict: bool,
    timeout: float,
    target: str,
) -> Dir:
    """The traced download (sync tasks): its output, the logs folder, shows in the Flyte UI."""
    result = _download(kind, id_, project, entity, host, offline, strict, timeout, target)
    return Dir.from_local_sync(str(result.path))


@flyte.trace
async def download_wandb_logs_async(
    kind: str,
    id_: str,
    project: str | None,
    entity: str | None,
    host: str | None,
    offline: bool,
    strict: bool,
    timeout: float,
    target: str,
) -> Dir:
    """The traced download (async tasks); the blocking download runs on a worker thread."""
    result = await asyncio.to_thread(
        _download, kind, id_, project, entity, host, offline, strict, timeout, target
    )
    return await Dir.from_local(str(result.path))
