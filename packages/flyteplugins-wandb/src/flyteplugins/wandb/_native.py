"""What ``report``, ``log_outputs`` and ``log_inputs`` add to one decorated task call.

:class:`Native` is the call's extension (``_extension``) for these settings: it opens the report
tab when the run exists, records the inputs before the user's function and logs its outputs
after it, and writes the tab as the run finishes. Each step catches its own failure and turns it
into a warning: these features never fail a task nor hide the user's exception.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from . import _artifacts, _flyte, _report
from ._extension import Extension


class Native(Extension):
    """The report tab and the artifact logging of one task call whose run is live."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.log_outputs = bool(settings.get("log_outputs"))
        self.log_inputs = bool(settings.get("log_inputs"))
        self.tab: _report.Tab | None = None
        self.call: Any = None
        self.run: Any = None

    def started(self, call: Any) -> None:
        self.call = call
        self.run = call.run
        if self.settings.get("report"):
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

    def before(self, call: Any, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
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

    def after(self, call: Any, func: Callable[..., Any], result: Any) -> None:
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

    def closing(self, call: Any, exc: BaseException | None, code: int) -> None:
        if self.tab is not None:
            _guard(_report.WandbReportFailed, "close the W&B tab", self.tab.closing, exc, code)

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        if self.tab is not None:
            _guard(_report.WandbReportFailed, "write the final W&B tab", self.tab.closed)


def _guard(category: type[Warning], what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        from ._resilience import redact

        warnings.warn(redact(f"could not {what}: {exc!r}"), category, stacklevel=3)
        return None


async def settle() -> None:
    """In an ``async`` task, after its call ended: let the scheduled report writes finish."""
    if _report._pending:
        await _guard_async(_report.drain())


async def _guard_async(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        warnings.warn(
            f"could not write the W&B tab: {exc!r}", _report.WandbReportFailed, stacklevel=2
        )
