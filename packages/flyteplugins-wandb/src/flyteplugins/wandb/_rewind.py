"""``rewind_to(step)``: continue a resumed run from the step its restored checkpoint holds.

A Flyte retry, an Elastic restart or a clustered (JobSet) restart resumes the same W&B run
(same id, ``resume="allow"``); training then restarts from its last checkpoint at step N while
the run already holds the lost attempt's steps after N. Called before the attempt logs
anything, :func:`rewind_to` asks W&B to rewind the run to N (the client's ``resume_from``,
``"<run id>?_step=N"``): the rows after N are dropped on the server and the next row is N + 1.

The run was started (resumed) before the task's code ran, so the rewind ends that run object
without a row logged and starts the rewound one in its place: ``get_wandb_run()`` and
``wandb.log`` then reach the new object, and :func:`rewind_to` returns it. Offline, the client
records the rewind in the new run's file and ``wandb sync`` applies it when the folders are
uploaded (each attempt's folder in the order they ran).

Validation happens before anything is touched: a step that is not a whole number ``>= 0``, a
call after this attempt already logged, and (online, where the resumed run's last step is
known) a step past that last step are refused, naming the run and the step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import _backend, _resolve, _state


class WandbRewindError(ValueError):
    """A rewind that cannot be done; the run is left as it was."""


def rewound(resolved: _resolve.ResolvedRun, step: int) -> _resolve.ResolvedRun:
    """The same run, continued from ``step``: ``resume_from`` replaces ``resume``.

    Only a run the call owns under a stable id can be rewound (a task's run, a rank's run of a
    distributed job); offline, the client records the rewind and ``wandb sync`` applies it.
    """
    p = resolved.plan
    problem = None
    if resolved.joins_parent or p.reuses_parent:
        problem = "it is a parent task's run, joined by this call"
    elif p.shared:
        problem = "it is a shared run written by several processes (run_mode='shared')"
    elif resolved.run_id is None:
        problem = "its id is chosen by the client for this call only (nothing to resume)"
    elif resolved.resume is None:
        problem = "this call does not resume it (a sweep trial's run)"
    if problem is not None:
        raise ValueError(
            f"cannot rewind W&B run {resolved.run_id or p.run_id!r} to step {step}: {problem}; "
            "a rewind needs a run of its own (a task's run, or one run per rank with "
            "run_mode='new')"
        )
    kwargs = {k: v for k, v in resolved.init_kwargs.items() if k != "resume"}
    kwargs["resume_from"] = f"{resolved.run_id}?_step={step}"
    return dataclasses.replace(resolved, resume=None, init_kwargs=kwargs)


def check_step(run_id: str, step: Any, *, last_step: int | None, logged: int, offline: bool) -> int:
    """The step to rewind ``run_id`` to, or a :class:`WandbRewindError` (``TypeError`` for a
    step that is not an ``int``) naming the run and the step.

    ``last_step`` is the resumed run's last step on its server (``None``: the run has none);
    ``logged`` how many rows this attempt logged already; ``offline``: the server is not asked
    now (the rewind is applied, and checked, when the run is synced).
    """
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(
            f"rewind_to({step!r}) for W&B run {run_id!r}: the step must be an int "
            f"(got {type(step).__name__})"
        )
    if step < 0:
        raise WandbRewindError(f"cannot rewind W&B run {run_id!r} to step {step}: steps start at 0")
    if logged > 0:
        raise WandbRewindError(
            f"cannot rewind W&B run {run_id!r} to step {step}: this attempt already logged "
            f"{logged} row(s); call rewind_to() right after restoring the checkpoint, before "
            "the first log"
        )
    if offline:
        return step
    if last_step is None:
        raise WandbRewindError(
            f"cannot rewind W&B run {run_id!r} to step {step}: the run has no history on its "
            "server (it was not resumed: a first attempt, or a run deleted on the server)"
        )
    if step > last_step:
        raise WandbRewindError(
            f"cannot rewind W&B run {run_id!r} to step {step}: past the run's last step {last_step}"
        )
    return step


def _facts(run: Any) -> tuple[int | None, int, bool]:
    """(last step on the server, rows logged by this object, offline) of a live run."""
    starting = int(getattr(run, "_starting_step", 0) or 0)
    local = int(getattr(run, "_local_step", starting) or 0)
    settings = getattr(run, "settings", None)
    offline = bool(getattr(settings, "_offline", False))
    resumed = bool(getattr(settings, "resumed", False))
    last = starting - 1 if resumed and starting > 0 else None
    return last, max(0, local - starting), offline


def rewind_to(step: int | None) -> Any:
    """Rewind the current task's W&B run to ``step`` and return the run to log to from now on.

    Call it in a ``@wandb_init`` task (in every rank that has a run) right after restoring a
    checkpoint that holds training state up to ``step``, before logging: the rows the lost
    attempt logged after ``step`` are removed and the next logged row is ``step + 1``.
    ``rewind_to(None)`` (nothing restored) keeps the run as resumed. Offline runs record the
    rewind; it is applied when they are synced.

    Raises ``TypeError`` / :class:`WandbRewindError` (a ``ValueError``) for a step that is not
    a whole number >= 0, past the resumed run's last step, or after this attempt logged; and
    ``RuntimeError`` outside a call that owns its run (no run in this process, a shared run, a
    parent's run).
    """
    active = _state.current_active()
    run = None if active is None else active.run
    call = None if active is None else getattr(active, "call", None)
    if active is None or run is None:
        raise RuntimeError(
            "rewind_to() is called inside a @wandb_init task (or function) whose process has a "
            "run; here there is none (outside @wandb_init, or a rank the plan leaves silent)"
        )
    if step is None:
        return run
    run_id = str(getattr(run, "id", "") or active.plan.run_id or "?")
    if call is None or not call.owned or call.resolved is None or call.request is None:
        raise RuntimeError(
            f"rewind_to({step!r}): W&B run {run_id!r} belongs to an enclosing call or task; "
            "rewind it where it was started"
        )
    last, logged, offline = _facts(run)
    checked = check_step(run_id, step, last_step=last, logged=logged, offline=offline)
    resolved = rewound(call.resolved, checked)
    return _restart(call, resolved, checked, offline=offline)


def _restart(call: Any, resolved: Any, step: int, *, offline: bool) -> Any:
    """End the call's run object (no row logged) and start the rewound one in its place."""
    request = dataclasses.replace(call.request, kwargs=dict(resolved.init_kwargs))
    if offline:
        # The rewound run's folder must not be the resumed one's (same id, same second).
        extra = dict(request.extra_settings)
        extra.setdefault("x_sync_dir_suffix", f"rewind{step}")
        request = dataclasses.replace(request, extra_settings=extra)
    old = call.run
    with _state.live_lock:
        for key in [k for k, v in _state.live_runs.items() if v is old]:
            del _state.live_runs[key]
    _backend.finish_run(old, 0)
    run = _backend.init_run(request)
    call.run = run
    call.request = request
    call.resolved = resolved
    with _state.live_lock:
        _state.live_runs[str(getattr(run, "id", "") or resolved.run_id)] = run
    if call.active is not None:
        call.active.run = run
    for ext in call.extensions:
        ext.replaced(call, old, run)
    return run
