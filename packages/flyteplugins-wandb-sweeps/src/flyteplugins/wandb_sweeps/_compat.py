"""The 2.x download functions, in the 2.x layout (the run's files at the top of its folder,
``summary.json``, ``metrics_history.json``), on the same machinery as :mod:`.download`."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import flyte
from flyte.io import Dir

from flyteplugins.wandb import get_wandb_run

from ._context import get_wandb_sweep_id, run_settings
from ._fetch import (
    DEFAULT_TIMEOUT,
    DownloadError,
    Source,
    compat_layout,
    default_download_dir,
    download_folder,
    fetch_run,
    finish,
    safe_path,
    target_dir,
)

logger = logging.getLogger(__name__)


def _source(what: str, id_: Any, offline: bool | None, timeout: float, **where: Any) -> Source:
    """The download's source; project and entity: given, else the run's, else the context's."""
    run, context = where.pop("run", None), run_settings()
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
    run_id = run_id or str(run.id)
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
    where = {"project": project, "entity": entity, "host": host, "offline": offline}
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
    where = {"project": project, "entity": entity, "host": host, "offline": offline}
    await asyncio.to_thread(download_wandb_sweep_dirs, sweep_id, base, include_history, **where)
    return await Dir.from_local(base)
