"""W&B configuration carried in Flyte's ``custom_context``, encoded so it decodes exactly.

Flyte's ``custom_context`` maps strings to strings and is handed to every child action. Each
setting is stored under its own key, ``<prefix><name>``, with the JSON text of the value, so a
project called ``"2024"`` comes back as the string ``"2024"`` and ``name="null"`` as ``"null"``.
Only the settings a user actually gave are written; a key whose value is the JSON ``null``
*unsets* a setting for the actions started below it (used to stop a user's run ``id`` from being
inherited). Keys without the prefix belong to someone else and are never looked at.

Generic helpers, shared with ``flyteplugins.wandb_sweeps`` (keep their signatures stable):

* :func:`encode_entries` ``(prefix, values) -> dict[str, str]``: JSON-encode a mapping under a
  prefix (``None`` values are skipped; :data:`UNSET` writes an explicit unset marker).
* :func:`decode_entries` ``(prefix, context, names=None) -> dict[str, Any]``: the inverse;
  unknown names are ignored when ``names`` is given, unset markers are dropped, and text under the
  prefix that is not valid JSON raises a ``ValueError`` naming the key.
* :func:`current_custom_context` ``() -> dict[str, str]``: the context the running code sees
  (the Flyte task's, else the one set by ``with`` blocks outside any task).
* :func:`override_custom_context` ``(entries)``: a context manager that overrides only the given
  keys for code and child tasks started inside it, restoring the previous values on exit.
* :class:`ContextEntries`: a ``dict[str, str]`` that is also such a context manager; it is what
  ``wandb_config`` (and ``wandb_sweep_config``) return.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Final

from flyteplugins.wandb_core import check_user_id, parse_rank_scope, parse_run_mode

from ._resilience import check_finish_timeout, check_offline_fallback

PREFIX: Final = "wandb/"
"""Prefix of every key this package writes into ``custom_context``."""

PARENT_KEY: Final = "wandb/~parent"
"""Where a task publishes its live run (id, host, entity, project) for its children."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Value for :func:`encode_entries` that removes an inherited setting for child actions."""

MODES: Final = ("online", "offline", "disabled", "shared")
"""Values of ``mode`` accepted by the wandb client (besides its legacy aliases)."""

# Settings wandb_config knows by name; any other keyword is passed to ``wandb.init`` as is.
KNOWN_SETTINGS: Final = (
    "project",
    "entity",
    "host",
    "id",
    "name",
    "tags",
    "config",
    "mode",
    "group",
    "job_type",
    "notes",
    "run_mode",
    "rank_scope",
    "download_logs",
    "finish_timeout",
    "offline_fallback",
)

# Our own bookkeeping key plus the settings stored under PREFIX but never passed to wandb.init.
_RESERVED_NAMES: Final = frozenset({"~parent"})

_outside_task: ContextVar[Mapping[str, str] | None] = ContextVar(
    "flyteplugins_wandb_outside_task_context", default=None
)


def _check_json_safe(value: Any, where: str) -> None:
    """Reject what JSON cannot carry exactly, naming where it was found."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}={value!r}: non-finite floats cannot be carried exactly")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json_safe(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has the key {k!r} ({type(k).__name__}); keys must be str")
            _check_json_safe(item, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where}={value!r} ({type(value).__name__}) cannot travel in Flyte's custom_context; "
        "use str, int, float, bool, None, lists and dicts of those"
    )


def encode_value(value: Any, *, key: str = "value") -> str:
    """The exact text form of ``value`` (JSON); ``key`` names it in errors."""
    _check_json_safe(value, key)
    return json.dumps(value, separators=(",", ":"), sort_keys=False, allow_nan=False)


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
    """``{prefix + name: JSON}`` for each value that is not ``None`` (:data:`UNSET` -> ``null``)."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        key = prefix + name
        out[key] = "null" if value is UNSET else encode_value(value, key=key)
    return out


def decode_entries(prefix: str, context: Mapping[str, str], names: Any = None) -> dict[str, Any]:
    """The settings stored under ``prefix`` in ``context`` (unset markers dropped).

    With ``names`` (a collection of setting names), other names under the prefix are ignored:
    they may have been written by a newer or different plugin.
    """
    out: dict[str, Any] = {}
    for key, text in context.items():
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if names is not None and name not in names:
            continue
        value = decode_value(text, key=key)
        if value is not None:
            out[name] = value
    return out


def current_custom_context() -> dict[str, str]:
    """The ``custom_context`` the running code sees: the Flyte task's, else our own overlay."""
    import flyte

    tctx = flyte.ctx()
    if tctx:
        return dict(tctx.custom_context or {})
    return dict(_outside_task.get() or {})


@contextmanager
def override_custom_context(entries: Mapping[str, str]) -> Iterator[None]:
    """Override only ``entries`` for the code (and child tasks) inside the block.

    Inside a Flyte task this is ``flyte.custom_context``; outside one, the entries are kept in a
    context variable, so plain functions decorated with ``@wandb_init`` see them too.
    """
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


class ContextEntries(dict[str, str]):
    """Encoded settings: usable as ``custom_context=`` and as a ``with`` block.

    As a mapping it merges with other entries (``{**wandb_config(...), "team": "a"}``). As a
    context manager it overrides only its own keys for child tasks started inside the block and
    restores the previous values on exit.
    """

    def __enter__(self) -> ContextEntries:
        stack = self.__dict__.setdefault("_stack", [])
        cm = override_custom_context(dict(self))
        cm.__enter__()
        stack.append(cm)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cm = self.__dict__["_stack"].pop()
        cm.__exit__(exc_type, exc, tb)


def _validate_settings(values: Mapping[str, Any]) -> None:
    """Reject bad settings at the call that gave them, naming the value and what is allowed."""
    if values.get("run_mode") is not None:
        parse_run_mode(values["run_mode"])
    if values.get("rank_scope") is not None:
        parse_rank_scope(values["rank_scope"])
    for name in ("project", "entity", "host", "name", "group", "job_type", "notes"):
        v = values.get(name)
        if v is not None and not isinstance(v, str):
            raise TypeError(f"{name}={v!r} ({type(v).__name__}): expected a str")
    if values.get("id") is not None:
        check_user_id(values["id"])
    mode = values.get("mode")
    if mode is not None and mode not in MODES:
        choices = ", ".join(repr(m) for m in MODES)
        raise ValueError(f"invalid mode {mode!r}; expected one of {choices}")
    tags = values.get("tags")
    if tags is not None and (
        isinstance(tags, str)
        or not isinstance(tags, (list, tuple))
        or not all(isinstance(t, str) for t in tags)
    ):
        raise TypeError(f"tags={tags!r}: expected a list of str")
    config = values.get("config")
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"config={config!r} ({type(config).__name__}): expected a dict")
    dl = values.get("download_logs")
    if dl is not None and not isinstance(dl, bool):
        raise TypeError(f"download_logs={dl!r} ({type(dl).__name__}): expected True or False")
    check_finish_timeout(values.get("finish_timeout"))
    check_offline_fallback(values.get("offline_fallback"))
    if "settings" in values and values["settings"] is not None:
        raise TypeError(
            "settings= cannot travel in custom_context; pass wandb.Settings to @wandb_init instead"
        )


SECRET_NAMES: Final = frozenset({"api_key", "key", "wandb_api_key", "token"})


def check_no_secret(values: Mapping[str, Any]) -> None:
    """Refuse an API key among the settings: it would be stored where anyone can read it.

    The message names the setting, never its value.
    """
    for name in values:
        if name.lower() in SECRET_NAMES:
            raise ValueError(
                f"{name}= is not accepted: an API key given here would be stored in the run's "
                "custom_context or config. Give the task a secret exposed as WANDB_API_KEY "
                '(flyte.Secret(key="wandb_api_key", as_env_var="WANDB_API_KEY")) instead.'
            )


def normalize_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate settings and bring them to their canonical form (``tags`` as a list)."""
    _validate_settings(values)
    out = {k: v for k, v in values.items() if v is not None}
    if "tags" in out:
        out["tags"] = list(out["tags"])
    if "config" in out:
        out["config"] = dict(out["config"])
    return out


def wandb_config(
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    id: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    config: dict[str, Any] | None = None,
    mode: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    notes: str | None = None,
    run_mode: str | None = None,
    rank_scope: str | None = None,
    download_logs: bool | None = None,
    finish_timeout: float | None = None,
    offline_fallback: bool | None = None,
    **init_kwargs: Any,
) -> ContextEntries:
    """W&B settings for a run and its child tasks, as Flyte ``custom_context`` entries.

    Pass the result as ``flyte.with_runcontext(custom_context=...)`` (it merges with other
    entries: ``{**wandb_config(...), "team": "a"}``), or use it inside a task as
    ``with wandb_config(...):`` to override only the given settings for the child tasks started
    in the block. ``host`` is the W&B server (the client's base URL and the links' host).
    ``finish_timeout`` bounds, in seconds, the upload after the task's code returned (default 30;
    0 waits for everything); ``offline_fallback=True`` logs offline instead of failing when the
    server cannot be reached at start. Any other keyword is passed to ``wandb.init``. Settings
    left as ``None`` are not written, so they keep whatever value an enclosing context gave them.
    """
    values: dict[str, Any] = {
        "project": project,
        "entity": entity,
        "host": host,
        "id": id,
        "name": name,
        "tags": tags,
        "config": config,
        "mode": mode,
        "group": group,
        "job_type": job_type,
        "notes": notes,
        "run_mode": run_mode,
        "rank_scope": rank_scope,
        "download_logs": download_logs,
        "finish_timeout": finish_timeout,
        "offline_fallback": offline_fallback,
        **init_kwargs,
    }
    for k in init_kwargs:
        if k.startswith("~") or k in _RESERVED_NAMES:
            raise ValueError(f"{k!r} is not a wandb.init keyword")
    check_no_secret(init_kwargs)
    return ContextEntries(encode_entries(PREFIX, normalize_settings(values)))


def read_wandb_config(context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings ``wandb_config`` stored in ``context`` (default: the current context)."""
    ctx = current_custom_context() if context is None else context
    values = decode_entries(PREFIX, ctx)
    for name in _RESERVED_NAMES:
        values.pop(name, None)
    return values


def read_parent(context: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The run an enclosing task published for its children (id, host, entity, project)."""
    ctx = current_custom_context() if context is None else context
    text = ctx.get(PARENT_KEY)
    if text is None:
        return None
    value = decode_value(text, key=PARENT_KEY)
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return None
    return value


def parent_entries(
    run_id: str, host: str | None, entity: str | None, project: str | None
) -> dict[str, str]:
    """Entries that publish a live run to child tasks (and stop a user id being inherited)."""
    parent = {"id": run_id, "host": host, "entity": entity, "project": project}
    return {PARENT_KEY: encode_value(parent, key=PARENT_KEY)}
