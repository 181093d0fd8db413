"""The state of the decorated calls in this process, at the bottom of the plugin.

Each call's :class:`ActiveRun` (holding the ``ResolvedRun`` every module reads the run's facts
from) lives in a ContextVar, which Flyte copies into tasks and traces; it is visible only in the
Flyte action that started it, so concurrent tasks each see their own run and an undecorated
child task none. ``live_runs``: the runs this process started, by id (a child task running in
its parent's process logs to the parent's run object instead of joining it).
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from flyteplugins.wandb_core import RunPlan, Topology

from . import _flyte


@dataclass
class ActiveRun:
    """What a ``@wandb_init`` call set up, as seen by the code inside it."""

    run: Any
    plan: RunPlan
    topology: Topology | None
    host: str | None = None
    entity: str | None = None
    project: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    scope: Any = field(default_factory=_flyte.scope)  # the Flyte action it is visible in
    seen: list[Any] = field(default_factory=list, repr=False, compare=False)  # see in_scope
    call: Any = field(default=None, repr=False, compare=False)  # the _Call that started it
    resolved: Any = field(default=None, repr=False, compare=False)  # None for a reused run


active_var: ContextVar[ActiveRun | None] = ContextVar("flyteplugins_wandb_active_run", default=None)

live_runs: dict[str, Any] = {}
live_lock = threading.Lock()


def is_finished(run: Any) -> bool:
    """Whether ``run`` was finished (by the plugin or the user). The client has no public flag:
    its ``_is_finished`` is read here only; without it a run counts as not finished."""
    return bool(getattr(run, "_is_finished", False))


def current_active() -> ActiveRun | None:
    """The :class:`ActiveRun` of the current call (``None`` in an undecorated child task that
    inherited its parent's context, as remotely)."""
    active = active_var.get()
    if active is None or not _flyte.in_scope(active.scope, active.seen):
        return None
    return active


def get_wandb_run() -> Any | None:
    """The W&B run of the current task or function call, or ``None``.

    ``None`` outside ``@wandb_init``, in processes the plan leaves silent (non-zero ranks under
    ``run_mode="auto"``), and once the run is finished (the user's ``run.finish()`` ends it).
    """
    active = current_active()
    if active is None or active.run is None or is_finished(active.run):
        return None
    return active.run


def live_snapshot() -> list[Any]:
    """The live runs, for the SIGTERM handler (which must not wait for :data:`live_lock`)."""
    return list(live_runs.values())
