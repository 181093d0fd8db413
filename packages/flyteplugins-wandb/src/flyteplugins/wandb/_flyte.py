"""Every read of Flyte the run path makes, on Flyte's public API (``flyte.ctx()``): the action
a call runs in (its run is visible there, in its traces and groups, not in child tasks), its
identity, and whether an object is a Flyte task."""

from __future__ import annotations

import os
from typing import Any

from ._resolve import Identity


def task_context() -> Any:
    """The current Flyte task context (falsy outside a task)."""
    import flyte

    return flyte.ctx()


def _action_of(tctx: Any) -> Any:
    """The action of a task context, the same in its traces and groups (``task_action``; flyte
    < 2.12 swaps ``action`` in traces but keeps ``output_path``)."""
    if not tctx:
        return None
    return getattr(tctx, "task_action", None) or tctx.output_path


def scope() -> Any:
    """The Flyte action the caller runs in (``None`` outside Flyte)."""
    return _action_of(task_context())


def in_scope(action: Any, seen: list[Any]) -> bool:
    """Whether the caller runs in ``action``; ``seen`` caches the last (immutable) task context
    found in it, so a repeated check is one ``flyte.ctx()`` and an identity test."""
    tctx = task_context()
    if seen and tctx is seen[0]:
        return True
    now = _action_of(tctx)
    if now is action or now == action:
        seen[:] = [tctx]
        return True
    return False


def identity(tctx: Any) -> Identity:
    """The Flyte identity of a task context."""
    action = getattr(tctx, "task_action", None) or tctx.action
    return Identity(
        run_name=action.run_name,
        action_name=action.name,
        project=action.project,
        domain=action.domain,
        attempt=_attempt_number(tctx),
    )


def _attempt_number(tctx: Any) -> int:
    """The Flyte attempt of this action (``FLYTE_ATTEMPT_NUMBER``, which local runs leave unset)."""
    value = getattr(tctx, "attempt_number", None)
    if isinstance(value, int):
        return value
    try:
        return int(os.environ.get("FLYTE_ATTEMPT_NUMBER", "0"))
    except ValueError:
        return 0


def is_task_template(obj: Any) -> bool:
    """Whether ``obj`` is a Flyte task (what ``@env.task`` returns)."""
    import flyte

    return isinstance(obj, flyte.TaskTemplate)
