"""Offline runs uploaded by Flyte: ``sync="after"`` keeps each run folder in Flyte's storage.

A task decorated with ``@wandb_init(sync="after")`` (or under ``wandb_config(sync="after")``)
logs offline whatever its pod's network (the resolver forces ``mode="offline"``). When a run
ends, the process that wrote it copies its run folder into the Flyte run's storage, under

    <run_base_dir>/wandb-offline/<W&B run id>/<upload key>/<offline-run-... folder>/

next to a small ``flyte-wandb.json`` (run id, server, entity, project, writer label). Every
attempt and every rank uploads its own folder under its own key, so nothing is overwritten.

The sync task (``_sync_task.wandb_sync_task``, declared on an environment the user chooses, with the
W&B secret and network) lists that tree, downloads only the folders not yet synced (into a
temporary folder it removes at the end) and hands them to the client's own ``wandb sync``,
which uploads the folders of one run one after another in the order they were started (a
retry's rewind after the attempt it rewinds; the writers of a shared run one by one, each
adding its rows). After each folder the client writes its marker ``run-<id>.wandb.synced``
next to the run file; the task copies that marker back into the Flyte run's storage, so a
retried or repeated sync skips the folder without downloading it: nothing is uploaded twice.
``wandb sync`` runs with the plugin's bounds on the client's retries and is stopped when it
finishes no folder for ``sync_timeout`` seconds. ``_sync_task.sync_wandb`` calls the sync task for
the current Flyte run.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from ._extension import Extension

OFFLINE_FOLDER: Final = "wandb-offline"
"""The folder under the Flyte run's storage (``run_base_dir``) that holds the run folders."""

METADATA_FILE: Final = "flyte-wandb.json"


_T = TypeVar("_T")


class WandbOfflineRunNotSaved(UserWarning):
    """An offline run folder of a ``sync="after"`` task could not be copied to Flyte's storage."""


# --------------------------------------------------------------------------------------------
# Where the folders go


def offline_root(run_base_dir: str) -> str:
    """The prefix of a Flyte run's offline W&B folders."""
    from flyte.storage import join

    return join(run_base_dir, OFFLINE_FOLDER)


def current_root() -> str:
    """:func:`offline_root` of the Flyte run the caller runs in."""
    import flyte

    tctx = flyte.ctx()
    if tctx is None or not tctx.run_base_dir:
        raise RuntimeError(
            "sync_wandb() runs inside a Flyte task (it syncs the offline W&B runs of that Flyte "
            "run); outside Flyte, upload run folders with `wandb sync <folder>`"
        )
    return offline_root(str(tctx.run_base_dir))


def _run_coroutine(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to its end from synchronous code, inside or outside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coroutine(make))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_as_coroutine(make))
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="flyteplugins-wandb-persist")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def _as_coroutine(make: Callable[[], Awaitable[_T]]) -> _T:
    return await make()


@dataclass(frozen=True)
class Persisted:
    """One run folder copied to Flyte's storage."""

    run_id: str
    remote: str
    folder: str


WRITE_WAIT_S: Final = 30.0
"""How long a finished run's folder is waited for: the client's service writes the end of the
run file in the background, after ``finish()`` returned."""


def _wait_written(folder: Path, wait_s: float = WRITE_WAIT_S) -> bool:
    """Wait until every run file in ``folder`` holds its run's exit record and stopped growing."""
    from ._records import read_run

    deadline = time.monotonic() + wait_s
    files = sorted(folder.glob("run-*.wandb"))
    sizes: dict[Path, int] = {}
    while True:
        done = True
        for path in files:
            size = path.stat().st_size
            if sizes.get(path) != size or not read_run(path).finished:
                done = False
            sizes[path] = size
        if done and files:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def persist_run(run: Any, *, host: str | None, label: str | None = None) -> Persisted | None:
    """Copy the finished offline ``run``'s folder into the current Flyte run's storage.

    Never raises: a failure is a :class:`WandbOfflineRunNotSaved` warning naming the local
    folder and the command that uploads it by hand. ``None`` when nothing was copied.
    """
    settings = getattr(run, "settings", None)
    folder = Path(str(getattr(settings, "sync_dir", "") or ""))
    run_id = str(getattr(run, "id", "") or "")
    try:
        if not run_id or not folder.is_dir():
            raise FileNotFoundError(f"the run has no local folder ({folder})")
        root = current_root()
        complete = _wait_written(folder)
        from flyte.storage import join

        key = f"{time.time_ns()}-{os.getpid()}"
        remote = join(root, run_id, key, folder.name)
        meta = {
            "run_id": run_id,
            "host": host,
            "entity": getattr(run, "entity", None) or None,
            "project": getattr(run, "project", None) or None,
            "label": label,
            "folder": folder.name,
        }
        (folder / METADATA_FILE).write_text(json.dumps(meta))

        async def upload() -> str:
            from flyte.storage import put

            return await put(str(folder), remote, recursive=True)

        _run_coroutine(upload)
        if not complete:
            warnings.warn(
                f"the offline W&B run {run_id} had not finished writing {folder} after "
                f"{WRITE_WAIT_S:.0f} s; what was written is saved for the sync task",
                WandbOfflineRunNotSaved,
                stacklevel=3,
            )
    except Exception as exc:
        warnings.warn(
            f"the offline W&B run {run_id or '?'} (sync='after') could not be copied to the "
            f"Flyte run's storage ({type(exc).__name__}: {exc}); its data stays in {folder}: "
            f"upload it with `wandb sync {folder}`",
            WandbOfflineRunNotSaved,
            stacklevel=3,
        )
        return None
    print(f"W&B offline run {run_id} saved for the sync task: {remote}", flush=True)
    return Persisted(run_id=run_id, remote=remote, folder=str(folder))


def after_run(active: Any, run: Any) -> None:
    """After a call's run finished: save its folder when the call's settings say
    ``sync="after"`` (every process that wrote a run, so every rank of a distributed task)."""
    if active is None or run is None or active.settings.get("sync") != "after":
        return
    persist_run(run, host=active.host, label=getattr(active.plan, "label", None))


# --------------------------------------------------------------------------------------------
# The sync task


class AfterRun(Extension):
    """``sync="after"``: the extension that saves the finished run's folder for the sync task."""

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        after_run(call.active, call.run)
