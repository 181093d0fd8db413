"""Every read of Flyte the run path makes, on Flyte's public API (``flyte.ctx()``).

* :func:`scope`: the Flyte action the caller runs in. A call's run is visible in the action it
  started in (its traces, groups and plain decorated functions included), not in a child task
  that inherited the plugin's context variable (local runs copy it into children).
* :func:`identity`: the Flyte run, action, project, domain and attempt of a task context.
* :func:`is_task_template`: whether an object is a Flyte task (``flyte.TaskTemplate``).
"""

from __future__ import annotations

import os
from typing import Any

from ._resolve import Identity


def task_context() -> Any:
    """The current Flyte task context (falsy outside a task)."""
    import flyte

    return flyte.ctx()


def _action_of(tctx: Any) -> Any:
    """The Flyte action of a task context: the same in the action's traces and groups, another
    one in each child task. flyte's ``task_action`` is exactly that; releases without it
    (< 2.12) swap ``action`` in traces but keep the action's ``output_path``."""
    if not tctx:
        return None
    return getattr(tctx, "task_action", None) or tctx.output_path


def scope() -> Any:
    """The Flyte action the caller runs in (``None`` outside Flyte)."""
    return _action_of(task_context())


def in_scope(action: Any, seen: list[Any]) -> bool:
    """Whether the caller runs in the Flyte ``action``. ``seen`` holds the last task context
    found to belong to it (task contexts are immutable: a change makes a new one), so a
    repeated check costs one ``flyte.ctx()`` call and an identity test."""
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
