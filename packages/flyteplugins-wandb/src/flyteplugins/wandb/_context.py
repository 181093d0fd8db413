"""W&B settings in Flyte's ``custom_context``: each one a user gave under ``<prefix><name>`` as
the JSON text of its value, so it decodes exactly (``null`` unsets an inherited one); keys
without the prefix belong to others. The encoding is shared with sweeps through ``ext``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

PREFIX: Final = "wandb/"
PARENT_KEY: Final = "wandb/~parent"
"""Where a task publishes its live run (id, host, entity, project) for its children."""

_outside_task: ContextVar[Mapping[str, str] | None] = ContextVar("fpw_outside", default=None)


def _check_json_safe(value: Any, where: str) -> None:
    """Reject what JSON cannot carry exactly, naming where it was found."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}={value!r}: non-finite floats cannot be carried exactly")
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if not isinstance(value, (list, tuple, Mapping)):
        raise TypeError(
            f"{where}={value!r} ({type(value).__name__}) cannot travel in Flyte's custom_context; "
            "use str, int, float, bool, None, lists and dicts of those"
        )
    for k, item in value.items() if isinstance(value, Mapping) else enumerate(value):
        if isinstance(value, Mapping) and not isinstance(k, str):
            raise TypeError(f"{where} has the key {k!r} ({type(k).__name__}); keys must be str")
        _check_json_safe(item, f"{where}[{k!r}]")


def encode_value(value: Any, *, key: str = "value") -> str:
    """The exact text form of ``value`` (JSON); ``key`` names it in errors."""
    _check_json_safe(value, key)
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def decode_value(text: str, *, key: str = "value") -> Any:
    """The inverse of :func:`encode_value`; ``ValueError`` naming ``key`` on foreign text."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"custom_context[{key!r}]={text!r} is not a value written by wandb_config(); "
            "set it with wandb_config(...) instead of by hand"
        ) from None


def encode_entries(prefix: str, values: Mapping[str, Any]) -> dict[str, str]:
    """``{prefix + name: JSON}`` for each value that is not ``None``."""
    return {prefix + k: encode_value(v, key=prefix + k) for k, v in values.items() if v is not None}


def decode_entries(prefix: str, context: Mapping[str, str], names: Any = None) -> dict[str, Any]:
    """The values stored under ``prefix`` in ``context`` (only ``names`` when given), unset
    markers dropped."""
    out = {}
    for key, text in context.items():
        name = key[len(prefix) :] if isinstance(key, str) and key.startswith(prefix) else None
        if name is not None and (names is None or name in names):
            out[name] = decode_value(text, key=key)
    return {k: v for k, v in out.items() if v is not None}


def current_custom_context() -> dict[str, str]:
    """The ``custom_context`` the running code sees: the Flyte task's, else our own overlay."""
    import flyte

    tctx = flyte.ctx()
    return dict((tctx.custom_context if tctx else _outside_task.get()) or {})


@contextmanager
def override_custom_context(entries: Mapping[str, str]) -> Iterator[None]:
    """Override only ``entries`` for the code (and child tasks) inside the block: in a Flyte task
    with ``flyte.custom_context``, outside one in a context variable (seen by plain functions)."""
    import flyte

    if flyte.ctx():
        with flyte.custom_context(**entries):
            yield
        return
    token = _outside_task.set({**(_outside_task.get() or {}), **entries})
    try:
        yield
    finally:
        _outside_task.reset(token)


def read_wandb_config(context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings ``wandb_config`` stored in ``context`` (default: the current context); the
    plugin's own bookkeeping (``wandb/~...``) left out."""
    entries = current_custom_context() if context is None else context
    ours = {k: v for k, v in entries.items() if not str(k).startswith(PREFIX + "~")}
    return decode_entries(PREFIX, ours)


def read_parent(context: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The run an enclosing task published for its children (id, host, entity, project)."""
    text = (current_custom_context() if context is None else context).get(PARENT_KEY)
    value = None if text is None else decode_value(text, key=PARENT_KEY)
    return value if isinstance(value, dict) and isinstance(value.get("id"), str) else None


def parent_entries(
    run_id: str, host: str | None, entity: str | None, project: str | None
) -> dict[str, str]:
    """Entries that publish a live run to child tasks (and stop a user id being inherited)."""
    parent = {"id": run_id, "host": host, "entity": entity, "project": project}
    return {PARENT_KEY: encode_value(parent, key=PARENT_KEY)}
