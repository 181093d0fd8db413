"""The one small interface through which features plug into a decorated call.

A feature beside the call's path (per-task wandb globals, preemption, the report tab and
artifacts, ``sync="after"``) is an :class:`Extension`. The decorator imports a feature's module
and adds its extension only when the call needs it (its setting is on, or the call owns its
run), so a plain decorated task runs the short path. Hooks, in the order they run:

* :meth:`Extension.started`: the call's run exists (or was reused), before the user's code;
* :meth:`Extension.before` / :meth:`Extension.after`: around the user's function, with its
  arguments and its result;
* :meth:`Extension.closing`: the code ended (``exc`` is its exception or ``None``), the run is
  not finished yet;
* :meth:`Extension.ended`: the call ended (the run is finished when the call owns it);
* :meth:`Extension.replaced`: ``rewind_to`` put a new run object in place of the call's run.

The log download behind ``download_logs=True`` plugs in from another distribution, through an
entry point group (:data:`DOWNLOAD_GROUP`), so the plugin never imports that distribution.

Each extension decides what its own failure means: features that must not fail a task (the
report, artifacts) turn their errors into warnings themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final


class Extension:
    """Hooks of one feature into one decorated call (``call`` is the decorator's ``_Call``);
    every hook does nothing unless overridden."""

    def started(self, call: Any) -> None:
        """The call's run exists; the user's code has not run yet."""

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

#: The entry point group through which a distribution offers the log download behind
#: ``download_logs=True`` (the sweeps distribution registers ``after_task`` and
#: ``after_task_async`` there); the plugin never imports that distribution.
DOWNLOAD_GROUP: Final = "flyteplugins.wandb.download"


def _download_point(name: str) -> Any | None:
    from importlib.metadata import entry_points

    return next((p for p in entry_points(group=DOWNLOAD_GROUP) if p.name == name), None)


def download_hook(name: str) -> Any:
    """The registered log-download function ``name`` (``after_task``/``after_task_async``)."""
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
