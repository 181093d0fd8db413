"""Helpers of the plugin's integration tests: run a task locally, read what W&B recorded."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import flyte
from _services import own_services

from flyteplugins.wandb._records import RunRecord, read_runs

#: Seconds ``wandb.teardown()`` may wait for this process's service to exit. wandb 0.31 can miss
#: the teardown request when a response of the service to an earlier request (``wandb.Api``) is
#: still being written as the client closes: the service then never exits and teardown waits
#: for it forever (seen once in a full run: the whole session stalled).
TEARDOWN_LIMIT_S = 60.0


def reset_wandb() -> None:
    """Forget the wandb client's process-wide setup, so it reads this test's environment.

    The client caches its settings (``WANDB_DIR``, mode, ...) in a singleton on first use; each
    test points them at its own folder. A service still up ``TEARDOWN_LIMIT_S`` after the
    teardown began is killed, with a warning, so the client's wait ends.
    """
    mod = sys.modules.get("wandb")
    if mod is None:
        return
    done = threading.Event()
    killed: list[int] = []

    def watch() -> None:
        if done.wait(TEARDOWN_LIMIT_S):
            return
        for pid in own_services():
            killed.append(pid)  # before the kill: teardown returns as soon as it is dead
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    watcher = threading.Thread(target=watch, name="wandb-teardown-watch", daemon=True)
    watcher.start()
    try:
        mod.teardown()
    except SystemExit:  # the client exits with a killed service's exit code
        if not killed:
            raise
    finally:
        done.set()
        watcher.join()
    if killed:
        warnings.warn(
            f"wandb.teardown() still waited on its service after {TEARDOWN_LIMIT_S:g} s: "
            f"killed wandb-core {killed}",
            stacklevel=2,
        )


def run_local(
    task: Any, *args: Any, name: str | None = None, custom_context: dict[str, str] | None = None
) -> Any:
    """Run ``task`` as a real local Flyte run and return its (first) output."""
    reset_wandb()
    flyte.init()
    kwargs: dict[str, Any] = {"mode": "local"}
    if name is not None:
        kwargs["name"] = name
    if custom_context is not None:
        kwargs["custom_context"] = custom_context
    run = flyte.with_runcontext(**kwargs).run(task, *args)
    outputs = run.outputs()
    return outputs[0] if len(outputs) else None


def settled_runs(root: Path) -> list[RunRecord]:
    """Every offline run file under ``root``, oldest first, once the client wrote it all.

    ``run.finish()`` can return before the client's writer has flushed the file's last records;
    shutting the client down (``wandb.teardown()``) waits for it.
    """
    reset_wandb()
    return read_runs(root)


def records(root: Path) -> list[RunRecord]:
    """Every offline run file under ``root``, oldest first."""
    return settled_runs(root)


def by_id(root: Path) -> dict[str, list[RunRecord]]:
    """Run files under ``root`` grouped by run id (a shared run has one file per writer)."""
    out: dict[str, list[RunRecord]] = {}
    for rec in settled_runs(root):
        assert rec.run_id is not None
        out.setdefault(rec.run_id, []).append(rec)
    return out


def only(root: Path) -> RunRecord:
    """The single run recorded under ``root``."""
    recs = settled_runs(root)
    assert len(recs) == 1, [r.run_id for r in recs]
    return recs[0]


def user_rows(rec: RunRecord) -> list[dict[str, Any]]:
    """History rows without W&B's own ``_step``/``_runtime``/``_timestamp`` keys."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rec.history]


def recorded_links(*run_names: str) -> set[str]:
    """The link URLs Flyte's local run store recorded (``local_persistence``), of the given runs
    (every run when none is named).

    Read through Flyte's own connection: the store's location is fixed when the process first
    opens it, which may have been an earlier test with another ``HOME``.
    """
    import json

    from flyte._persistence._db import LocalDB

    query = "select run_name, log_links from runs where log_links is not null"
    with LocalDB.sync_conn() as conn:
        rows = conn.execute(query).fetchall()
    return {
        url
        for name, raw in rows
        if not run_names or name in run_names
        for _, url in json.loads(raw)
    }
