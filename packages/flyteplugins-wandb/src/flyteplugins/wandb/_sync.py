"""``sync="after"``: each process that wrote an offline run copies its folder, once the run ended,
to ``<run_base_dir>/wandb-offline/<run id>/<time-pid>/<folder>/`` for the sync task."""

from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from ._extension import Extension

METADATA_FILE: Final = "flyte-wandb.json"
WRITE_WAIT_S: Final = 30.0  # the client's service ends the run file after finish() returned


class WandbOfflineRunNotSaved(UserWarning):
    """An offline run folder of a ``sync="after"`` task could not be copied to Flyte's storage."""


def current_root() -> str:
    """Where the offline W&B folders of the Flyte run the caller runs in are kept."""
    import flyte
    from flyte.storage import join

    tctx = flyte.ctx()
    if tctx is None or not tctx.run_base_dir:
        raise RuntimeError(
            "sync_wandb() runs inside a Flyte task (it syncs the offline W&B runs of that Flyte "
            "run); outside Flyte, upload run folders with `wandb sync <folder>`"
        )
    return join(str(tctx.run_base_dir), "wandb-offline")


def _wait_written(folder: Path) -> bool:
    """Wait until every run file in ``folder`` holds its run's exit record and stopped growing."""
    from ._records import read_run

    deadline, files = time.monotonic() + WRITE_WAIT_S, list(folder.glob("run-*.wandb"))
    sizes: dict[Path, int] = {}
    while True:
        done = bool(files)
        for path in files:
            done = done and sizes.get(path) == path.stat().st_size and read_run(path).finished
            sizes[path] = path.stat().st_size
        if done or time.monotonic() >= deadline:
            return done
        time.sleep(0.1)


class AfterRun(Extension):
    """Saves the finished run's folder for the sync task."""

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        active, run = call.active, call.run
        if active is None or run is None or active.settings.get("sync") != "after":
            return
        folder = Path(str(getattr(run.settings, "sync_dir", "") or ""))
        run_id = str(getattr(run, "id", "") or "")
        try:
            if not run_id or not folder.is_dir():
                raise FileNotFoundError(f"the run has no local folder ({folder})")
            from flyte.storage import join, put

            remote = join(current_root(), run_id, f"{time.time_ns()}-{os.getpid()}", folder.name)
            complete = _wait_written(folder)
            meta = {"run_id": run_id, "host": active.host, "entity": run.entity or None,
                    "project": run.project or None, "folder": folder.name,
                    "label": getattr(active.plan, "label", None)}  # fmt: skip
            (folder / METADATA_FILE).write_text(json.dumps(meta))
            with ThreadPoolExecutor(1, thread_name_prefix="flyteplugins-wandb-persist") as pool:
                # on an event loop of its own, whether or not the task runs one in this thread
                pool.submit(asyncio.run, put(str(folder), remote, recursive=True)).result()
        except Exception as exc:
            msg = (f"the offline W&B run {run_id or '?'} (sync='after') could not be copied to the "
                   f"Flyte run's storage ({type(exc).__name__}: {exc}); its data stays in "
                   f"{folder}: upload it with `wandb sync {folder}`")  # fmt: skip
            warnings.warn(msg, WandbOfflineRunNotSaved, stacklevel=2)
            return
        if not complete:
            msg = (f"the offline W&B run {run_id} had not finished writing {folder} after "
                   f"{WRITE_WAIT_S:.0f} s; what was written is saved")  # fmt: skip
            warnings.warn(msg, WandbOfflineRunNotSaved, stacklevel=2)
        print(f"W&B offline run {run_id} saved for the sync task: {remote}", flush=True)
