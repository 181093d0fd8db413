"""What ``report``, ``log_outputs`` and ``log_inputs`` add to a decorated task's call. Each step
turns its own failure into a warning: these features never fail a task nor hide its exception."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from . import _artifacts, _flyte, _report
from ._extension import Extension

_ARTIFACT, _REPORT = _artifacts.WandbArtifactFailed, _report.WandbReportFailed


class Native(Extension):
    """The report tab and the artifact logging of one task call whose run is live."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.tab: _report.Tab | None = None

    def started(self, call: Any) -> None:
        if self.settings.get("report"):
            args = (call.run, call.active.topology)
            self.tab = _guard(_REPORT, "start the W&B tab", _report.open_tab, *args)

    def before(self, call: Any, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
        if self.settings.get("log_inputs"):
            inputs = (call.run, _artifacts.bind_inputs(func, args, kwargs), call.owned)
            self._list(
                _guard(_ARTIFACT, "record the task's inputs", _artifacts.log_inputs, *inputs)
            )

    def after(self, call: Any, func: Callable[..., Any], result: Any) -> None:
        if self.settings.get("log_outputs"):
            tctx = _flyte.task_context()
            identity = _flyte.identity(tctx).as_config() if tctx else None
            args = (call.run, call.name, func, result, identity)
            self._list(_guard(_ARTIFACT, "log the task's outputs", _artifacts.log_outputs, *args))

    def _list(self, items: list[dict[str, Any]] | None) -> None:  # in the tab's artifacts
        if self.tab is not None and items:
            self.tab.artifacts.extend(items)

    def closing(self, call: Any, exc: BaseException | None, code: int) -> None:
        if self.tab is not None:
            _guard(_REPORT, "close the W&B tab", self.tab.closing, exc, code)

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        if self.tab is not None:
            _guard(_REPORT, "write the final W&B tab", self.tab.closed)


def _guard(category: type[Warning], what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        from ._resilience import redact

        warnings.warn(redact(f"could not {what}: {exc!r}"), category, stacklevel=3)
        return None


async def settle() -> None:
    """In an ``async`` task, after its call ended: let the scheduled report writes finish."""
    try:
        await _report.drain()
    except Exception as exc:
        warnings.warn(f"could not write the W&B tab: {exc!r}", _REPORT, stacklevel=1)
