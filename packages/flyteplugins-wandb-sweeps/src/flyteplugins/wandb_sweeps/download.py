"""Download what W&B recorded for a run or a sweep: ``download_run`` writes ``files/``,
``history.jsonl`` (every row), ``summary.json``, ``config.json``, offline ``run-<id>.wandb`` and
``download.json`` (what failed, and why); ``download_sweep`` one such folder per trial under
``runs/``. :func:`after_task`/:func:`after_task_async` are the plugin's ``download_logs`` (entry
points ``flyteplugins.wandb.download``)."""

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

from ._context import is_offline
from ._fetch import (
    DEFAULT_TIMEOUT,
    DEFAULT_WORKERS,
    REPORT,
    STANDARD,
    DownloadResult,
    Source,
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
    where = {"project": project, "entity": entity, "host": host, "wandb_dir": wandb_dir}
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
    where = {"project": project, "entity": entity, "host": host, "wandb_dir": wandb_dir}
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
