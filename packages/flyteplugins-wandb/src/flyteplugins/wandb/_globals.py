"""wandb's module-level state (``wandb.run``, ``wandb.log``, ``wandb.config``, ...) per call.

The only module that touches wandb's module globals. A decorated call binds its run when the run
becomes current and unbinds it when the call ends.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class Binding:
    """What :func:`bind` changed, handed back to :func:`unbind`."""

    def __init__(self, run: Any, previous: Any) -> None:
        self.run = run
        self.previous = previous


def bind(run: Any, previous: Any | None) -> Binding:
    """Make ``run`` the current run of wandb's module-level helpers for this call.

    ``previous`` is what ``wandb.run`` was before the run started.
    """
    from wandb.sdk import wandb_init

    wandb_init._set_global_run(run)
    return Binding(run, previous)


def release(binding: Binding) -> Callable[[Any | None], None]:
    """Prepare to undo :func:`bind`; call the result, with the enclosing run, after finishing.

    Only a call whose run still holds the slot hands it back: a concurrent call that started
    later keeps it.
    """
    held = current_global() is binding.run

    def restore(enclosing: Any | None) -> None:
        if held:
            _set(enclosing if enclosing is not None else binding.previous)

    return restore


def _set(run: Any | None) -> None:
    import wandb
    from wandb.sdk import wandb_init
    from wandb.sdk.lib import module

    if run is None or getattr(run, "_is_finished", False):
        if wandb.run is not None:
            module.unset_globals()  # type: ignore[no-untyped-call]
        return
    wandb_init._set_global_run(run)


def current_global() -> Any | None:
    """``wandb.run`` when wandb is already imported, else ``None`` (without importing it)."""
    mod = sys.modules.get("wandb")
    return getattr(mod, "run", None) if mod is not None else None
