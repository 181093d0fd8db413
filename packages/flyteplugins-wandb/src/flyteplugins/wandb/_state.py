"""The state of the decorated calls in this process: the bottom of the plugin.

* :class:`ActiveRun`: what one ``@wandb_init`` call set up (its run, plan and the
  ``ResolvedRun`` every other module reads the run's facts from), as seen by the code inside it.
* The call's ActiveRun lives in a :class:`~contextvars.ContextVar`, which Flyte copies into each
  task (asyncio task or worker thread) and into ``@flyte.trace`` calls; it is visible only in the
  Flyte action that started it (:mod:`._flyte`), so concurrent tasks in one process each see their
  own run and an undecorated child task sees none.
* The live runs this process started, by id: a child task running in its parent's process
  (local runs) logs to the parent's live run object instead of joining it.
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
    #: The Flyte action the call started in: the run is visible there only.
    scope: Any = field(default_factory=_flyte.scope)
    #: The last Flyte task context found to belong to :attr:`scope` (see ``_flyte.in_scope``).
    seen: list[Any] = field(default_factory=list, repr=False, compare=False)
    #: The call that started the run (``rewind_to`` restarts it); ``None`` if not this call's.
    call: Any = field(default=None, repr=False, compare=False)
    #: Everything the resolver decided about the run (``None`` for a run the call reused).
    resolved: Any = field(default=None, repr=False, compare=False)


active_var: ContextVar[ActiveRun | None] = ContextVar("flyteplugins_wandb_active_run", default=None)

live_runs: dict[str, Any] = {}
live_lock = threading.Lock()


def is_finished(run: Any) -> bool:
    """Whether ``run`` was finished (by the plugin, or by the user's own ``run.finish()``).

    The client has no public flag for it; its ``_is_finished`` attribute is read here only, and a
    client without it counts as not finished (the plugin then finishes it, a no-op)."""
    return bool(getattr(run, "_is_finished", False))


def current_active() -> ActiveRun | None:
    """The :class:`ActiveRun` of the current call, or ``None``.

    ``None`` in a child task that inherited its parent's context (local runs) but is not
    decorated itself, as in a remote run, where it runs in another process.
    """
    active = active_var.get()
    if active is None or not _flyte.in_scope(active.scope, active.seen):
        return None
    return active


def get_wandb_run() -> Any | None:
    """The W&B run of the current task or function call, or ``None``.

    ``None`` outside ``@wandb_init``, in processes that the plan leaves silent (for example
    non-zero ranks under ``run_mode="auto"``), and once the run is finished (the user's own
    ``run.finish()`` or ``wandb.finish()`` inside the call ends it early).
    """
    active = current_active()
    if active is None or active.run is None or is_finished(active.run):
        return None
    return active.run


def live_snapshot() -> list[Any]:
    """The live runs, for the SIGTERM handler (which must not wait for :data:`live_lock`)."""
    return list(live_runs.values())
