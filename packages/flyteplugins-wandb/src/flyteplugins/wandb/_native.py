"""What ``report``, ``log_outputs`` and ``log_inputs`` add to one decorated task call.

:class:`Native` opens the report tab when the run exists, records the inputs before the user's
function, logs its outputs after it and writes the tab as the run finishes. Each step turns its
own failure into a warning: these features never fail a task nor hide the user's exception.
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
        self.tab: _report.Tab | None = None
        self.run: Any = None

    def started(self, call: Any) -> None:
        self.run = call.run
        if self.settings.get("report"):
            args = (_report.open_tab, self.run, call.active.topology)
            self.tab = _guard(_report.WandbReportFailed, "start the W&B tab", *args)

    def _artifacts(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        items = _guard(_artifacts.WandbArtifactFailed, what, fn, *args)
        if self.tab is not None and items:
            self.tab.artifacts.extend(items)

    def before(self, call: Any, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
        if self.settings.get("log_inputs"):
            inputs = _artifacts.bind_inputs(func, args, kwargs)
            self._artifacts(
                "record the task's inputs", _artifacts.log_inputs, self.run, inputs, call.owned
            )

    def after(self, call: Any, func: Callable[..., Any], result: Any) -> None:
        if self.settings.get("log_outputs"):
            tctx = _flyte.task_context()
            identity = _flyte.identity(tctx).as_config() if tctx else None
            args = (self.run, call.name, func, result, identity)
            self._artifacts("log the task's outputs", _artifacts.log_outputs, *args)

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
        try:
            await _report.drain()
        except Exception as exc:
            msg = f"could not write the W&B tab: {exc!r}"
            warnings.warn(msg, _report.WandbReportFailed, stacklevel=1)
