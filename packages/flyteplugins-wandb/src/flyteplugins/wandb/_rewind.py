"""``rewind_to(step)``: continue a resumed run from the step its restored checkpoint holds, by
finishing it and starting it again with the client's ``resume_from="<id>?_step=N"``."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import _backend, _resolve, _state


class WandbRewindError(ValueError):
    """A rewind that cannot be done; the run is left as it was."""


def rewound(resolved: _resolve.ResolvedRun, step: int) -> _resolve.ResolvedRun:
    """The same run, continued from ``step`` (``resume_from`` replaces ``resume``); only a run
    the call owns under a stable id can be rewound (offline, ``wandb sync`` applies it)."""
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
    """``step``, or a :class:`WandbRewindError` (``TypeError`` for a non-``int``) naming the run;
    ``last_step``: the run's last step on its server (``None``: none); ``logged``: rows this
    attempt logged; ``offline``: the server is checked only when synced."""
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(
            f"rewind_to({step!r}) for W&B run {run_id!r}: the step must be an int "
            f"(got {type(step).__name__})"
        )
    why = None
    if step < 0:
        why = "steps start at 0"
    elif logged > 0:
        why = (
            f"this attempt already logged {logged} row(s); call rewind_to() right after "
            "restoring the checkpoint, before the first log"
        )
    elif offline:
        return step
    elif last_step is None:
        why = "the run has no history on its server (not resumed: a first attempt, or deleted)"
    elif step > last_step:
        why = f"past the run's last step {last_step}"
    if why:
        raise WandbRewindError(f"cannot rewind W&B run {run_id!r} to step {step}: {why}")
    return step


def rewind_to(step: int | None) -> Any:
    """Rewind the current task's W&B run to ``step`` and return the run to log to from now on.

    Call it (in every rank with a run) right after restoring a checkpoint of ``step``, before
    logging: the lost attempt's rows after ``step`` are dropped, the next row is ``step + 1``;
    ``None`` keeps the run as resumed. :class:`WandbRewindError` / ``TypeError`` for a bad
    step, ``RuntimeError`` outside a call that owns its run.
    """
    active = _state.current_active()
    if active is None or active.run is None:
        raise RuntimeError(
            "rewind_to() is called inside a @wandb_init task (or function) whose process has a "
            "run; here there is none (outside @wandb_init, or a rank the plan leaves silent)"
        )
    old, call = active.run, active.call
    if step is None:
        return old
    run_id = str(getattr(old, "id", "") or active.plan.run_id or "?")
    if call is None or not call.owned or call.resolved is None or call.request is None:
        raise RuntimeError(
            f"rewind_to({step!r}): W&B run {run_id!r} belongs to an enclosing call or task; "
            "rewind it where it was started"
        )
    starting = int(getattr(old, "_starting_step", 0) or 0)
    logged = max(0, int(getattr(old, "_local_step", starting) or 0) - starting)
    offline = bool(getattr(old.settings, "_offline", False))
    last = starting - 1 if getattr(old.settings, "resumed", False) and starting > 0 else None
    check_step(run_id, step, last_step=last, logged=logged, offline=offline)
    resolved = rewound(call.resolved, step)
    request = dataclasses.replace(call.request, kwargs=dict(resolved.init_kwargs))
    if offline:  # the rewound run's folder must not be the resumed one's (same id, same second)
        extra = {"x_sync_dir_suffix": f"rewind{step}", **request.extra_settings}
        request = dataclasses.replace(request, extra_settings=extra)
    call._finish(0)  # out of the live runs, finished
    active.run = call.run = run = _backend.init_run(request)
    call.request, call.resolved = request, resolved
    with _state.live_lock:
        _state.live_runs[str(getattr(run, "id", "") or resolved.run_id)] = run
    for ext in call.extensions:
        ext.replaced(call, old, run)
    return run
