"""Helpers of the plugin's integration tests: run a task locally, read what W&B recorded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import flyte

from flyteplugins.wandb._records import RunRecord, read_runs


def reset_wandb() -> None:
    """Forget the wandb client's process-wide setup, so it reads this test's environment.

    The client caches its settings (``WANDB_DIR``, mode, ...) in a singleton on first use; each
    test points them at its own folder.
    """
    mod = sys.modules.get("wandb")
    if mod is not None:
        mod.teardown()


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
