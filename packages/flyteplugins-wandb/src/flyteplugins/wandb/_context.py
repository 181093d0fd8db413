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
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ClassVar, Final, TypeVar

from ._settings import KNOWN_SETTINGS, check_no_secret, normalize_settings

PREFIX: Final = "wandb/"
"""Prefix of every key this package writes into ``custom_context``."""

PARENT_KEY: Final = "wandb/~parent"
"""Where a task publishes its live run (id, host, entity, project) for its children."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Value for :func:`encode_entries` that removes an inherited setting for child actions."""


_RESERVED_NAMES: Final = frozenset({PARENT_KEY.removeprefix(PREFIX)})  # bookkeeping, not settings

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


_E = TypeVar("_E", bound="ContextEntries")

_entered: ContextVar[tuple[tuple[ContextEntries, AbstractContextManager[None]], ...]] = ContextVar(
    "flyteplugins_wandb_entered_entries", default=()
)
"""The ``with`` blocks open in the current context, innermost last.

Kept in a context variable rather than on the object: each asyncio task and each thread sees its
own copy, so one module-level ``CFG = wandb_config(...)`` can be entered by concurrent tasks (and
nested, and re-entered) without one task's exit undoing another's.
"""


class ContextEntries(dict[str, str]):
    """Encoded settings: usable as ``custom_context=`` and as a ``with`` block.

    As a mapping it merges with other entries (``{**wandb_config(...), "team": "a"}``). As a
    context manager it overrides only its own keys for child tasks started inside the block and
    restores the previous values on exit; the object can be reused, nested and entered from
    concurrent tasks and threads. Subclasses that set ``_prefix`` and ``_fields`` also read their
    settings as attributes (``cfg.project``; ``None`` when not given).
    """

    _prefix: ClassVar[str] = ""
    _fields: ClassVar[tuple[str, ...]] = ()

    def __enter__(self: _E) -> _E:
        cm = override_custom_context(dict(self))
        cm.__enter__()
        _entered.set((*_entered.get(), (self, cm)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = _entered.get()
        if not stack or stack[-1][0] is not self:
            where = (
                "inside another block that is still open"
                if any(entry is self for entry, _ in stack)
                else "in this task or thread"
            )
            raise RuntimeError(
                f"{type(self).__name__} is exited without a matching enter {where}: "
                "enter and exit each block in the same task (or thread), innermost first"
            )
        _entered.set(stack[:-1])
        stack[-1][1].__exit__(exc_type, exc, tb)

    # -- attribute access -----------------------------------------------------------------------

    def decoded(self) -> dict[str, Any]:
        """The settings these entries hold, decoded (bookkeeping keys and unset markers omitted)."""
        values = decode_entries(self._prefix, self) if self._prefix else {}
        return {k: v for k, v in values.items() if not k.startswith("~")}

    def __getattr__(self, name: str) -> Any:
        if not self._prefix or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        values = self.decoded()
        if name == "kwargs":
            extra = {k: v for k, v in values.items() if k not in self._fields}
            return extra or None
        if name in self._fields:
            return values.get(name)
        raise AttributeError(
            f"{type(self).__name__} has no setting {name!r}; its settings are "
            + ", ".join(self._fields)
            + " and kwargs (every other keyword)"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if not self._prefix or (name not in self._fields and name != "kwargs"):
            raise AttributeError(
                f"cannot set {name!r} on {type(self).__name__}: "
                + (f"its settings are {', '.join(self._fields)} and kwargs" if self._prefix else "")
            )
        updates = dict(value or {}) if name == "kwargs" else {name: value}
        if name == "kwargs":
            for key in self.decoded():
                if key not in self._fields and key not in updates:
                    del self[self._prefix + key]
        checked = self._normalize({k: v for k, v in updates.items() if v is not None})
        for key, item in updates.items():
            if item is None:
                self.pop(self._prefix + key, None)
        self.update(encode_entries(self._prefix, checked))

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    @classmethod
    def _normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Check settings given by attribute (subclasses apply their own rules)."""
        return values

    def to_dict(self) -> dict[str, str]:
        """The entries as a plain ``dict[str, str]``, as Flyte's ``custom_context`` takes them."""
        return dict(self)

    @classmethod
    def from_dict(cls: type[_E], entries: Mapping[str, str]) -> _E:
        """The settings of this kind found in ``entries`` (other keys are left out)."""
        return cls(
            {
                k: v
                for k, v in entries.items()
                if isinstance(k, str)
                and k.startswith(cls._prefix)
                and not k[len(cls._prefix) :].startswith("~")
            }
        )


class WandbConfig(ContextEntries):
    """What :func:`wandb_config` returns: its settings as ``custom_context`` entries.

    A ``dict[str, str]`` (pass it as ``custom_context=``, merge it with ``**``), a reusable
    ``with`` block, and the settings as attributes: ``cfg.project`` is the value given, ``None``
    when it was not given (the enclosing context or the default then applies); ``cfg.kwargs`` is
    a dict of the other ``wandb.init`` keywords (``None`` when there are none). Setting an
    attribute checks the value as :func:`wandb_config` would.
    """

    _prefix: ClassVar[str] = PREFIX
    _fields: ClassVar[tuple[str, ...]] = KNOWN_SETTINGS

    @classmethod
    def _normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        check_no_secret(values)
        return normalize_settings(values)


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
    run_mode: str | None = None,
    rank_scope: str | None = None,
    download_logs: bool | str | os.PathLike[str] | None = None,
    job_type: str | None = None,
    notes: str | None = None,
    finish_timeout: float | None = None,
    offline_fallback: bool | None = None,
    report: bool | None = None,
    log_outputs: bool | None = None,
    log_inputs: bool | None = None,
    **init_kwargs: Any,
) -> WandbConfig:
    """W&B settings for a run and its child tasks, as Flyte ``custom_context`` entries.

    Pass the result as ``flyte.with_runcontext(custom_context=...)`` (it merges with other
    entries: ``{**wandb_config(...), "team": "a"}``), or use it inside a task as
    ``with wandb_config(...):`` to override only the given settings for the child tasks started
    in the block. ``host`` is the W&B server (the client's base URL and the links' host).
    ``finish_timeout`` bounds, in seconds, the upload after the task's code returned (default 30;
    0 waits for everything); ``offline_fallback=True`` logs offline instead of failing when the
    server cannot be reached at start; ``download_logs=True`` downloads the run's logs after the
    task into the default folder, ``download_logs="DIR"`` into ``DIR`` (needs the ``[sweeps]``
    extra). ``report``, ``log_outputs`` and ``log_inputs`` turn on, for every decorated task of
    the run, the W&B tab of its Flyte report, its outputs as artifacts and its inputs as config
    and lineage (see ``@wandb_init``). Any other keyword must be a ``wandb.init`` keyword and is
    passed to it. Settings left as ``None`` are not written, so they keep whatever value an
    enclosing context gave them.
    Every setting is checked now; the result reads back as attributes (``cfg.project``,
    ``cfg.kwargs`` for the other keywords) and ``cfg.to_dict()`` gives the plain entries.
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
        "run_mode": run_mode,
        "rank_scope": rank_scope,
        "download_logs": download_logs,
        "job_type": job_type,
        "notes": notes,
        "finish_timeout": finish_timeout,
        "offline_fallback": offline_fallback,
        "report": report,
        "log_outputs": log_outputs,
        "log_inputs": log_inputs,
        **init_kwargs,
    }
    check_no_secret(init_kwargs)
    return WandbConfig(encode_entries(PREFIX, normalize_settings(values)))


def read_wandb_config(context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings ``wandb_config`` stored in ``context`` (default: the current context)."""
    ctx = current_custom_context() if context is None else context
    values = decode_entries(PREFIX, ctx)
    for name in _RESERVED_NAMES:
        values.pop(name, None)
    return values


def get_wandb_context() -> WandbConfig | None:
    """The ``wandb_config`` settings the running code sees, or ``None`` when there are none.

    Inside a task: those of its ``custom_context`` (given at submission or by enclosing ``with``
    blocks and parent tasks); outside one: those of the open ``with wandb_config(...)`` blocks.
    """
    found = WandbConfig.from_dict(current_custom_context())
    return found if found else None


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
