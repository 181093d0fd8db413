"""On SIGTERM (pod eviction, spot reclaim): mark the live runs preempting and finish them.

Only the main thread may set signal handlers, so only a run started there (an ``async`` task, a
decorated function called there) installs it: W&B marks a synchronous task's run (in a worker
thread) crashed when the process dies. The last such run restores the previous disposition."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Final

from . import _state
from ._extension import Extension

#: Seconds the handler spends finishing runs (Kubernetes' default grace period is 30 s).
PREEMPT_BUDGET_S: Final = 20.0

_armed = 0  # live runs that want the handler (all on the main thread: no lock)
_previous: Any = None  # the disposition ours replaced; None while ours is not installed


class Preemption(Extension):
    """Keeps the SIGTERM handler installed while the call's run lives (main thread only)."""

    def started(self, call: Any) -> None:
        global _armed, _previous
        _armed += 1
        current = signal.getsignal(signal.SIGTERM)
        # SIG_IGN: the process chose to ignore SIGTERM; None: a C handler owns it. Keep those.
        if current not in (_handler, signal.SIG_IGN, None):
            _previous = current
            signal.signal(signal.SIGTERM, _handler)

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        global _armed, _previous
        _armed = max(0, _armed - 1)
        if _armed == 0 and _previous is not None:
            if signal.getsignal(signal.SIGTERM) is _handler:
                signal.signal(signal.SIGTERM, _previous)
            _previous = None


def _handler(signum: int, frame: Any) -> None:
    # No lock of the plugin is taken here (it may be held where the signal landed); the network
    # work runs in a thread joined for at most PREEMPT_BUDGET_S.
    from . import _backend

    runs = _state.live_snapshot()

    def finish_all() -> None:
        for run in runs:
            try:
                if not _state.is_finished(run):
                    _backend.mark_preempting(run)
                    _backend.finish_run(run, 128 + signum)
            except Exception:  # the process is going down: still finish the other runs
                continue

    worker = threading.Thread(target=finish_all, name="flyteplugins-wandb-preempt", daemon=True)
    worker.start()
    worker.join(PREEMPT_BUDGET_S)
    if callable(_previous):
        _previous(signum, frame)
    else:  # end by SIGTERM, as the process would have without the plugin
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
