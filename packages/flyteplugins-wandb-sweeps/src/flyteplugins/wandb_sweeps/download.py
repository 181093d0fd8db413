"""Download what W&B recorded for a run or a sweep: ``download_run`` writes ``files/``,
``history.jsonl`` (every row), ``summary.json``, ``config.json``, offline ``run-<id>.wandb`` and
``download.json`` (what failed, and why); ``download_sweep`` one such folder per trial under
``runs/``; the 2.x functions keep the 2.x layout. :func:`after_task`/:func:`after_task_async` are
the plugin's ``download_logs`` (entry points ``flyteplugins.wandb.download``)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flyte
from flyte.io import Dir

from flyteplugins.wandb import get_wandb_run
from flyteplugins.wandb.ext import read_wandb_config

from ._context import get_wandb_sweep_id, is_offline
from ._fetch import (
    DEFAULT_TIMEOUT,
    DEFAULT_WORKERS,
    REPORT,
    STANDARD,
    DownloadError,
    DownloadResult,
    Source,
    compat_layout,
    default_download_dir,
    download_folder,
    fetch_run,
    finish,
    safe_path,
    target_dir,
    write_json,
)

logger = logging.getLogger(__name__)


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
    """Download every file, the full history and the summary of one W&B run into ``target`` (default
    ``<default_download_dir()>/wandb-run-<run_id>``): from the server at ``host``, or offline
    from its folder under ``wandb_dir`` (default ``WANDB_DIR``). Files are fetched on ``workers``
    threads within ``timeout`` seconds; failures are reported in the result and
    ``download.json``, or raised as :class:`DownloadError` with ``strict=True``."""
    where: dict[str, Any] = {"project": project, "entity": entity, "host": host}
    where["wandb_dir"] = wandb_dir
    where |= {"workers": workers, "progress": progress}
    src = Source.make("run_id", run_id, offline, timeout, **where)
    out = target_dir(target, download_folder("run", run_id, True))
    return finish(fetch_run(run_id, out, STANDARD, src), strict, f"W&B run {run_id!r}")


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
    """Download every run of a sweep (``runs/<run id>/``) and ``sweep.json`` into ``target``
    (default ``<default_download_dir()>/wandb-sweep-<sweep_id>``); offline, a sweep with no local
    controller here and no trial on disk is an error. Bounds and failures as
    :func:`download_run`."""
    where: dict[str, Any] = {"project": project, "entity": entity, "host": host}
    where["wandb_dir"] = wandb_dir
    where |= {"workers": workers, "progress": progress}
    src = Source.make("sweep_id", sweep_id, offline, timeout, **where)
    out = target_dir(target, download_folder("sweep", sweep_id, True))
    info, run_ids = src.sweep(sweep_id)
    result = DownloadResult(path=out)
    for run_id in run_ids:
        try:
            part = fetch_run(run_id, safe_path(out / "runs", run_id), STANDARD, src)
        except Exception as exc:  # the trial could not be read at all
            result.failed[f"runs/{run_id}"] = f"{type(exc).__name__}: {exc}"
        else:
            result.merge(part, f"runs/{run_id}")
    write_json(out / "sweep.json", info)
    return finish(result, strict, f"W&B sweep {sweep_id!r}")


def remove_downloaded_logs(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the downloads under ``path`` (default :func:`default_download_dir`): only the folders
    a download wrote (holding its ``download.json``, or a sweep's run folders); the folders
    removed."""
    base = Path(path) if path is not None else default_download_dir()
    children = sorted(base.iterdir()) if base.is_dir() else []
    folders = [c for c in children if c.is_dir() and not c.is_symlink()]
    removed = [c for c in folders if (c / REPORT).is_file() or _is_sweep_download(c)]
    for folder in removed:
        shutil.rmtree(folder)
    return removed


def _is_sweep_download(folder: Path) -> bool:
    runs = (
        [sub for sub in folder.iterdir() if sub.is_dir()]
        if folder.name.startswith("wandb-sweep-")
        else []
    )
    return any((sub / REPORT).is_file() for sub in runs)


def _hook_args(
    run_id: str | None,
    sweep_id: str | None,
    offline: bool | None,
    download_logs: bool | str | os.PathLike[str],
    **where: Any,
) -> dict[str, Any]:
    if (run_id is None) == (sweep_id is None):
        raise ValueError("after_task needs exactly one of run_id or sweep_id")
    kind, id_ = ("sweep", str(sweep_id)) if sweep_id else ("run", str(run_id))
    target = str(download_folder(kind, id_, download_logs))
    offline = is_offline() if offline is None else offline
    return {"kind": kind, "id_": id_, **where, "offline": offline, "target": target}


def _hook_done(args: Mapping[str, Any], error: Exception | None) -> None:
    """Say where the logs went, or why not (raised in strict mode)."""
    what = f"W&B logs of {args['kind']} {args['id_']}"
    if error is None:
        where = Path(args["target"]).resolve()
        print(f"{what} downloaded to {where}", file=sys.stderr, flush=True)
    elif args["strict"]:
        raise error
    else:
        logger.warning("downloading the %s into %s failed: %s", what, args["target"], error)


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
    """Download a finished run's (or sweep's) logs through a ``flyte.trace`` function: what
    ``@wandb_init``/``@wandb_sweep`` call after a synchronous task with ``download_logs``
    (``True``, or a folder), printing where. Returns the logs' ``flyte.io.Dir``, or ``None`` when
    the download failed and ``strict`` is off (the failure is logged)."""
    args = _hook_args(**locals())  # the arguments, as given
    try:
        out = download_wandb_logs(**args)
    except Exception as exc:
        return _hook_done(args, exc)
    _hook_done(args, None)
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
    args = _hook_args(**locals())  # the arguments, as given
    try:
        out = await download_wandb_logs_async(**args)
    except Exception as exc:
        return _hook_done(args, exc)
    _hook_done(args, None)
    return out


def _download(kind: str, id_: str, **args: Any) -> DownloadResult:
    return (download_sweep if kind == "sweep" else download_run)(id_, **args)


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
    args = dict(project=project, entity=entity, host=host, offline=offline, strict=strict)
    result = _download(kind, id_, **args, timeout=timeout, target=target)
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
    """The traced download (async tasks), on a worker thread."""
    args = dict(project=project, entity=entity, host=host, offline=offline, strict=strict)
    result = await asyncio.to_thread(_download, kind, id_, **args, timeout=timeout, target=target)
    return await Dir.from_local(str(result.path))


def _source(what: str, id_: Any, offline: bool | None, timeout: float, **where: Any) -> Source:
    """The download's source; project and entity: given, else the run's, else the context's."""
    run, context = where.pop("run", None), read_wandb_config()
    for key in ("project", "entity"):
        where[key] = where[key] or getattr(run, key, None) or context.get(key)
    return Source.make(what, id_, offline, timeout, **where)


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
    """The 2.x function: download one run (default: the current one) into ``path`` (default
    ``<default_download_dir()>/<run_id>``) and return it: its files at the top, ``summary.json``,
    ``metrics_history.json`` (every row, one JSON list; not with ``include_history=False``),
    ``download.json``. Raises :class:`DownloadError` naming what could not be downloaded."""
    run = get_wandb_run()
    if run_id is None and run is None:
        raise RuntimeError(
            "download_wandb_run_dir() needs a run_id outside a @wandb_init task or function "
            "(there is no current run to default to)"
        )
    run_id = run_id or str(run.id)  # type: ignore[union-attr]
    run = run if run is not None and str(run.id) == run_id else None
    where = {"project": project, "entity": entity, "host": host, "run": run}
    src = _source("run_id", run_id, offline, timeout, **where)
    out = target_dir(path, safe_path(default_download_dir(), run_id))
    try:
        result = fetch_run(run_id, out, compat_layout(include_history), src)
    except Exception as exc:  # the run itself could not be read: one error type, as in 2.x
        raise DownloadError(
            f"W&B run {run_id!r} could not be downloaded into {out}: {type(exc).__name__}: {exc}",
            {run_id: str(exc)},
        ) from exc
    return str(finish(result, True, f"W&B run {run_id!r}").path)


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
    """The 2.x function: download every run of a sweep (default: the current one) into
    ``<base_path>/<run_id>`` (default base: :func:`default_download_dir`), laid out as
    :func:`download_wandb_run_dir`; returns the folders. A run that fails is logged and left out;
    :class:`DownloadError` when none could be downloaded or the sweep cannot be read."""
    sweep_id = sweep_id or get_wandb_sweep_id()
    if sweep_id is None:
        raise RuntimeError(
            "download_wandb_sweep_dirs() needs a sweep_id outside a @wandb_sweep task "
            "(there is no current sweep to default to)"
        )
    where = {"project": project, "entity": entity, "host": host}
    src = _source("sweep_id", sweep_id, offline, timeout, **where)
    base = target_dir(base_path, default_download_dir())
    try:
        _, run_ids = src.sweep(sweep_id)
    except Exception as exc:  # the sweep itself could not be read
        raise DownloadError(
            f"W&B sweep {sweep_id!r} could not be read: {type(exc).__name__}: {exc}",
            {sweep_id: str(exc)},
        ) from exc
    failed: dict[str, str] = {}
    done = []
    for run_id in run_ids:
        try:
            part = fetch_run(run_id, safe_path(base, run_id), compat_layout(include_history), src)
        except Exception as exc:  # the trial could not be read at all
            failed[run_id] = f"{type(exc).__name__}: {exc}"
            continue
        if finish(part, False, f"W&B run {run_id!r} of sweep {sweep_id!r}").ok:
            done.append(str(part.path))
        else:
            failed[run_id] = "could not download " + ", ".join(sorted(part.failed))
    if failed and not done:
        raise DownloadError(
            f"no run of W&B sweep {sweep_id!r} could be downloaded: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(failed.items())),
            failed,
        )
    if failed:
        names, total = ", ".join(sorted(failed)), len(failed) + len(done)
        logger.warning(
            "%d of %d runs of sweep %r not downloaded: %s", len(failed), total, sweep_id, names
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
    """The 2.x traced :func:`download_wandb_run_dir` (``await`` it in an async task): its folder
    shows in the Flyte UI."""
    where: dict[str, Any] = {"project": project, "entity": entity, "host": host}
    where["offline"] = offline
    folder = await asyncio.to_thread(download_wandb_run_dir, run_id, path, include_history, **where)
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
    """The 2.x traced :func:`download_wandb_sweep_dirs`, into
    ``<default_download_dir()>/wandb-sweep-<id>`` by default; returns the sweep's folder."""
    base = base_path if base_path is not None else str(download_folder("sweep", sweep_id, True))
    where: dict[str, Any] = {"project": project, "entity": entity, "host": host}
    where["offline"] = offline
    await asyncio.to_thread(download_wandb_sweep_dirs, sweep_id, base, include_history, **where)
    return await Dir.from_local(base)
