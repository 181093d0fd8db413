"""W&B settings in Flyte's ``custom_context``: each one a user gave under ``<prefix><name>`` as
the JSON text of its value, so it decodes exactly (``null`` unsets an inherited one); keys
without the prefix belong to others. The encoding is shared with sweeps through ``ext``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, Final, TypeVar

from ._settings import KNOWN_SETTINGS, normalize_settings

PREFIX: Final = "wandb/"
PARENT_KEY: Final = "wandb/~parent"
"""Where a task publishes its live run (id, host, entity, project) for its children."""

_outside_task: ContextVar[Mapping[str, str] | None] = ContextVar("fpw_outside", default=None)
# The ``with`` blocks open in this asyncio task or thread, innermost last: one module-level
# ``wandb_config(...)`` can be entered by concurrent tasks, nested and re-entered.
_entered: ContextVar[tuple[tuple[ContextEntries, AbstractContextManager[None]], ...]] = ContextVar(
    "fpw_entered", default=()
)


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


_E = TypeVar("_E", bound="ContextEntries")


class ContextEntries(dict[str, str]):
    """Encoded settings: ``custom_context=`` entries, and a reusable, nestable ``with`` block
    overriding them for the code and child tasks inside it. A subclass's ``_fields`` (under its
    ``_prefix``) read and set as attributes (``kwargs``: the other keys), checked by
    ``_normalize``."""

    _prefix: ClassVar[str] = ""
    _fields: ClassVar[tuple[str, ...]] = ()

    def __enter__(self: _E) -> _E:
        cm = override_custom_context(dict(self))
        cm.__enter__()
        _entered.set((*_entered.get(), (self, cm)))
        return self

    def __exit__(self, *exc: Any) -> None:
        stack = _entered.get()
        if not stack or stack[-1][0] is not self:
            raise RuntimeError(
                f"{type(self).__name__} is exited out of order or without a matching enter in "
                "this task or thread: enter and exit each block in the same task (or thread), "
                "innermost first"
            )
        _entered.set(stack[:-1])
        stack[-1][1].__exit__(*exc)

    def decoded(self) -> dict[str, Any]:
        """The settings these entries hold, decoded (unset markers omitted)."""
        return decode_entries(self._prefix, self)

    def _setting(self, name: str) -> str:
        if name not in (*self._fields, "kwargs"):
            raise AttributeError(
                f"{type(self).__name__} has no setting {name!r}; its settings are "
                f"{', '.join(self._fields)} and kwargs (every other keyword)"
            )
        return name

    def __getattr__(self, name: str) -> Any:
        values = self.decoded()
        if self._setting(name) == "kwargs":
            return {k: v for k, v in values.items() if k not in self._fields} or None
        return values.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        updates = {self._setting(name): value}
        if name == "kwargs":  # replaces every other keyword
            updates = {
                **{k: None for k in self.decoded() if k not in self._fields},
                **(value or {}),
            }
        checked = self._normalize({k: v for k, v in updates.items() if v is not None})
        for key in updates:
            self.pop(self._prefix + key, None)
        self.update(encode_entries(self._prefix, checked))

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    @classmethod
    def _normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        return values

    def to_dict(self) -> dict[str, str]:
        """The entries as a plain ``dict[str, str]``, as Flyte's ``custom_context`` takes them."""
        return dict(self)

    @classmethod
    def from_dict(cls: type[_E], entries: Mapping[str, str]) -> _E:
        """The settings of this kind found in ``entries`` (other keys are left out)."""
        p = cls._prefix
        ours = {k: v for k, v in entries.items() if isinstance(k, str) and k.startswith(p)}
        return cls({k: v for k, v in ours.items() if not k.startswith(p + "~")})


class WandbConfig(ContextEntries):
    """What :func:`wandb_config` returns (``cfg.project``; ``cfg.kwargs``: the other
    ``wandb.init`` keywords; setting one checks it as ``wandb_config`` does)."""

    _prefix: ClassVar[str] = PREFIX
    _fields: ClassVar[tuple[str, ...]] = KNOWN_SETTINGS

    @classmethod
    def _normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
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
    """W&B settings for a run and its child tasks, as Flyte ``custom_context`` entries: pass
    them to ``flyte.with_runcontext(custom_context=...)`` (merged as ``{**cfg, "team": "a"}``),
    or use ``with wandb_config(...):`` in a task for the child tasks started in the block.

    ``host``: the W&B server; ``finish_timeout``: seconds the upload may take after the task's
    code returned (default 30; 0: no limit); ``offline_fallback=True``: log offline when the
    server cannot be reached at start; ``download_logs``: ``True`` or a folder, for the run's logs
    after the task (needs the ``[sweeps]`` extra); ``report``, ``log_outputs``, ``log_inputs``:
    see ``@wandb_init``; other keywords go to ``wandb.init``; ``None`` keeps what an enclosing
    context gave. Checked now; ``cfg.project``, ``cfg.kwargs``, ``cfg.to_dict()`` read it back.
    """
    named = {k: v for k, v in locals().items() if k != "init_kwargs"}  # the parameters above
    return WandbConfig(encode_entries(PREFIX, normalize_settings({**named, **init_kwargs})))


def read_wandb_config(context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings ``wandb_config`` stored in ``context`` (default: the current context)."""
    return WandbConfig.from_dict(current_custom_context() if context is None else context).decoded()


def get_wandb_context() -> WandbConfig | None:
    """The ``wandb_config`` settings the running code sees (its task's ``custom_context``, else
    the open ``with wandb_config(...)`` blocks), or ``None``."""
    return WandbConfig.from_dict(current_custom_context()) or None


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
