"""The one small interface through which features plug into a decorated call.

A feature beside the call's path (per-task wandb globals, preemption, the report tab, artifacts,
``sync="after"``) is an :class:`Extension`, whose module the call imports only when it needs it.
Each extension turns its own failures into warnings where they must not fail a task. The log
download behind ``download_logs=True`` comes from another distribution, through an entry point
group (:data:`DOWNLOAD_GROUP`), so the plugin never imports that distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final


class Extension:
    """Hooks of one feature into one call (``call`` is ``_call._Call``), in the order they run;
    each does nothing unless overridden."""

    def started(self, call: Any) -> None:
        """The call's run exists (started or reused); the user's code has not run yet."""

    def before(self, call: Any, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
        """Right before the user's function, with its arguments."""

    def after(self, call: Any, func: Callable[..., Any], result: Any) -> None:
        """Right after the user's function returned ``result``."""

    def closing(self, call: Any, exc: BaseException | None, code: int) -> None:
        """The user's code ended (``exc``: its exception); the run is not finished yet."""

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        """The call ended; its run is finished when the call owns it."""

    def replaced(self, call: Any, old: Any, new: Any) -> None:
        """``rewind_to`` finished ``old`` and started ``new`` as the call's run."""


SWEEPS_EXTRA_HINT: Final = 'pip install "flyteplugins-wandb[sweeps]"'
#: Where a distribution registers the log download (``after_task``, ``after_task_async``).
DOWNLOAD_GROUP: Final = "flyteplugins.wandb.download"


def _download_point(name: str) -> Any | None:
    from importlib.metadata import entry_points

    return next((p for p in entry_points(group=DOWNLOAD_GROUP) if p.name == name), None)


def download_hook(name: str) -> Any:
    """The registered log-download function ``name``."""
    point = _download_point(name)
    if point is None:
        raise ImportError(
            f"no distribution registers the log download {name!r} (entry point group "
            f"{DOWNLOAD_GROUP!r}): {SWEEPS_EXTRA_HINT}"
        )
    return point.load()


def download_registered() -> bool:
    """Whether a distribution registers the log download (the sweeps one does)."""
    return _download_point("after_task") is not None
