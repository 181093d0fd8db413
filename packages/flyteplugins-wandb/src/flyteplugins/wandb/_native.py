"""What ``report``, ``log_outputs`` and ``log_inputs`` add to one decorated task call.

``_decorator`` calls :func:`start` when the call's run exists, :func:`before` and :func:`after`
around the user's function (where its arguments and result are), and :meth:`Native.closing` /
:meth:`Native.closed` before and after the run is finished. Each step catches its own failure
and turns it into a warning: these features never fail a task nor hide the user's exception.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from . import _artifacts, _flyte, _report
from ._settings import OPTIONS


class Native:
    """The report tab and the artifact logging of one call whose run is live."""

    def __init__(self, call: Any, settings: dict[str, Any]) -> None:
        self.call = call
        self.run = call.run
        self.log_outputs = bool(settings.get("log_outputs"))
        self.log_inputs = bool(settings.get("log_inputs"))
        self.tab: _report.LiveTab | None = None
        if settings.get("report"):
            self.tab = _guard(
                _report.WandbReportFailed,
                "start the W&B tab",
                _report.open_tab,
                self.run,
                call.active.topology,
            )

    def _identity(self) -> dict[str, Any] | None:
        tctx = _flyte.task_context()
        return _flyte.identity(tctx).as_config() if tctx else None

    def _show(self, items: list[dict[str, Any]] | None) -> None:
        if self.tab is not None and items:
            self.tab.artifacts.extend(items)

    def before(self, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
        if not self.log_inputs:
            return
        inputs = _artifacts.bind_inputs(func, args, kwargs)
        used = _guard(
            _artifacts.WandbArtifactFailed,
            "record the task's inputs",
            _artifacts.log_inputs,
            self.run,
            inputs,
            self.call.owned,
        )
        self._show(used)

    def after(self, func: Callable[..., Any], result: Any) -> None:
        if not self.log_outputs:
            return
        logged = _guard(
            _artifacts.WandbArtifactFailed,
            "log the task's outputs",
            _artifacts.log_outputs,
            self.run,
            self.call.name,
            func,
            result,
            self._identity(),
        )
        self._show(logged)

    def closing(self, exc: BaseException | None, code: int) -> None:
        if self.tab is not None:
            _guard(_report.WandbReportFailed, "close the W&B tab", self.tab.closing, exc, code)

    def closed(self) -> None:
        if self.tab is not None:
            _guard(_report.WandbReportFailed, "write the final W&B tab", self.tab.closed)


def _guard(category: type[Warning], what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        from ._resilience import redact

        warnings.warn(redact(f"could not {what}: {exc!r}"), category, stacklevel=3)
        return None


def start(call: Any) -> Native | None:
    """The extras of ``call`` (a ``_decorator._Call`` that just entered), or ``None``.

    Only a task's own call with a live run in this process gets them (a rank the plan leaves
    silent has no run; a plain decorated function has no Flyte outputs or report of its own).
    """
    active = call.active
    if call.run is None or active is None or not call.task_wrapper:
        return None
    settings = active.settings
    if not any(settings.get(name) for name in OPTIONS):
        return None
    return Native(call, settings)


async def settle() -> None:
    """In an ``async`` task, after its call ended: let the scheduled report writes finish."""
    if _report._pending or _report._scheduled[0]:
        await _guard_async(_report.drain())


async def _guard_async(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        warnings.warn(
            f"could not write the W&B tab: {exc!r}", _report.WandbReportFailed, stacklevel=2
        )


def before(call: Any, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
    native = getattr(call, "native", None)
    if native is not None:
        native.before(func, args, kwargs)


def after(call: Any, func: Callable[..., Any], result: Any) -> None:
    native = getattr(call, "native", None)
    if native is not None:
        native.after(func, result)


def refuse_for_function(opts: Any, target: Any) -> None:
    """``report``/``log_outputs``/``log_inputs`` belong to tasks: refused on a plain function."""
    given = [name for name in OPTIONS if opts.get(name)]
    if given:
        raise TypeError(
            f"{', '.join(f'{n}=True' for n in given)} on "
            f"{getattr(target, '__qualname__', target)!r}: "
            "these apply to Flyte tasks (their report, typed inputs and outputs); put "
            "@wandb_init(...) above @env.task, or set them with wandb_config(...) for the tasks "
            "of a run"
        )
