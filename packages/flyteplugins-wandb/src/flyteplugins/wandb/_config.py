"""The ``wandb_config(...)`` objects users build: encoded settings that are also a reusable,
nestable ``with`` block and read back as attributes (``cfg.project``, as in 2.x)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

from ._context import (
    PREFIX,
    current_custom_context,
    decode_entries,
    encode_entries,
    override_custom_context,
)
from ._settings import KNOWN_SETTINGS, normalize_settings

# The ``with`` blocks open in this asyncio task or thread, innermost last: one module-level
# ``wandb_config(...)`` can be entered by concurrent tasks, nested and re-entered.
_entered: ContextVar[tuple[tuple[ContextEntries, AbstractContextManager[None]], ...]] = ContextVar(
    "fpw_entered", default=()
)


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
    """W&B settings for a run and its child tasks, as Flyte ``custom_context`` entries, for
    ``flyte.with_runcontext(custom_context=...)`` (merged as ``{**cfg, "team": "a"}``), or as
    ``with wandb_config(...):`` in a task for the child tasks started in the block.

    ``host``: the W&B server; ``finish_timeout``: seconds the upload may take after the task's
    code returned (default 30; 0: no limit); ``offline_fallback=True``: log offline when the
    server cannot be reached at start; ``download_logs``: ``True`` or a folder, for the run's logs
    after the task (needs the ``[sweeps]`` extra); ``report``, ``log_outputs``, ``log_inputs``:
    see ``@wandb_init``; other keywords go to ``wandb.init``; ``None`` keeps what an enclosing
    context gave. Checked now; ``cfg.project``, ``cfg.kwargs``, ``cfg.to_dict()`` read it back.
    """
    named = {k: v for k, v in locals().items() if k != "init_kwargs"}  # the parameters above
    return WandbConfig(encode_entries(PREFIX, normalize_settings({**named, **init_kwargs})))


def get_wandb_context() -> WandbConfig | None:
    """The ``wandb_config`` settings the running code sees (its task's ``custom_context``, else
    the open ``with wandb_config(...)`` blocks), or ``None``."""
    return WandbConfig.from_dict(current_custom_context()) or None
