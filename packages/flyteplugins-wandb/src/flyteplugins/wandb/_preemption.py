"""Preemption: on SIGTERM (pod eviction, spot reclaim), mark live runs preempting and finish them.

The handler exists only while this process has a live plugin run: it is installed when the first
run starts and the previous disposition is restored when the last one ends (unless someone else
replaced ours meanwhile, whose handler is then left alone). Importing or decorating changes
nothing.

Python lets only the main thread install signal handlers, so the handler is installed (and
removed) only by a run that starts (and ends) on the main thread: an ``async`` task, which Flyte
runs on the main thread's event loop, or a decorated function called there. A synchronous Flyte
task runs in a worker thread and gets no handler; W&B marks its run crashed when the process
dies (make the task ``async def`` to have its run marked preempted).

The handler never takes a lock this plugin may hold when the signal lands (it reads a snapshot of
the live runs), does the network work in a helper thread joined for at most
:data:`PREEMPT_BUDGET_S` seconds, then hands the signal on: to the previous Python handler, or to
the default disposition (the process ends with SIGTERM, as it would have without the plugin).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any, Final

from . import _state
from ._extension import Extension

PREEMPT_BUDGET_S: Final = 20.0
"""Seconds the SIGTERM handler spends marking and finishing runs before the process goes down
(Kubernetes' default grace period is 30 s)."""

_lock = threading.Lock()  # arm/disarm only; never taken by the handler
_armed = 0
_previous: Any = None
_ours: Callable[[int, Any], None] | None = None
_runs: Callable[[], list[Any]] = list


class Preemption(Extension):
    """The extension that keeps the SIGTERM handler installed while the call's run lives."""

    def started(self, call: Any) -> None:
        arm(_state.live_snapshot)

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        disarm()


def arm(live_runs: Callable[[], list[Any]]) -> None:
    """A run started: make sure the handler is installed. ``live_runs`` lists the live runs."""
    global _armed, _runs
    with _lock:
        _armed += 1
        _runs = live_runs
    _on_main_thread(_install)  # no-op when already installed


def disarm() -> None:
    """A run ended: restore the previous disposition when it was the last one."""
    global _armed
    with _lock:
        _armed = max(0, _armed - 1)
        last = _armed == 0
    if last:
        _on_main_thread(_restore)


def installed() -> bool:
    """Whether the plugin's SIGTERM handler is the current one."""
    return _ours is not None and signal.getsignal(signal.SIGTERM) is _ours


def _install() -> None:
    global _previous, _ours
    with _lock:
        if _armed == 0 or installed():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_IGN or previous is None:
            return  # the process chose to ignore SIGTERM (or a C handler owns it): keep that
        _previous = previous
        _ours = _handler
        signal.signal(signal.SIGTERM, _handler)


def _restore() -> None:
    global _previous, _ours
    with _lock:
        if _armed or _ours is None:
            return
        if signal.getsignal(signal.SIGTERM) is _ours:
            signal.signal(signal.SIGTERM, _previous)
        _previous = _ours = None


def _snapshot() -> list[Any]:
    for _ in range(3):
        try:
            return list(_runs())
        except RuntimeError:  # the registry changed while being copied
            continue
    return []


def _handler(signum: int, frame: Any) -> None:
    from . import _backend

    runs = _snapshot()

    def finish_all() -> None:
        for run in runs:
            if _state.is_finished(run):
                continue
            try:
                _backend.mark_preempting(run)
                _backend.finish_run(run, 128 + signum)
            except Exception:  # the process is going down: still finish the other runs
                continue

    worker = threading.Thread(target=finish_all, name="flyteplugins-wandb-preempt", daemon=True)
    worker.start()
    worker.join(PREEMPT_BUDGET_S)
    previous = _previous
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _on_main_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` when called on the main thread, the only one Python lets set signal handlers.

    A run started on another thread (Flyte runs a synchronous task function in a worker thread)
    gets no handler: W&B then marks its run crashed when the process dies.
    """
    if threading.current_thread() is threading.main_thread():
        fn()
