"""wandb's module-level helpers (``wandb.run``, ``log``, ``config``, ``init``, ...) per call.

The only module that touches wandb's module state. While a plugin run is live, the ``wandb``
module's class is a subclass with one property per helper (``set_global``'s parameters, plus
``init``): inside a call whose run is live (in its Flyte action, ``_flyte.in_scope``) a helper is
that run's; anywhere else it is what wandb itself stored in the module's ``__dict__``. Plugin runs
start with ``reinit="create_new"`` and are never written into the module, so only the class is
put back after the last one. Threads the user starts see the call only when started in a copy of
its context (``asyncio.to_thread`` does that).
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any

from ._backend import STARTING
from ._extension import Extension
from ._flyte import in_scope
from ._state import active_var


class Globals(Extension):
    """Makes wandb's module-level helpers answer for the call's run."""

    def __init__(self) -> None:
        self.binding: Binding | None = None

    def started(self, call: Any) -> None:
        self.binding = bind(call.run)

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        binding, self.binding = self.binding, None
        if binding is not None:
            release(binding)

    def replaced(self, call: Any, old: Any, new: Any) -> None:
        self.ended(call, None, 0)
        self.binding = bind(new)


class Binding:
    """One live plugin run, from :func:`bind` until :func:`release`."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.released = False


_lock = threading.Lock()
_live: dict[int, Binding] = {}  # by id(binding)
_saved_class: type | None = None  # the wandb module's class while ours is installed
_classes: dict[type, type] = {}  # our subclass of each original class, built on first install


def _visible_run() -> Any | None:
    """The live run of the caller's call, else ``None`` (on every ``wandb.log``: inlined)."""
    active = active_var.get()
    if active is None:
        return None
    run = active.run
    if run is None or getattr(run, "_is_finished", False):  # _state.is_finished, inlined
        return None
    if not in_scope(active.scope, active.seen):
        return None
    return run


class WandbGlobalsUnavailable(UserWarning):
    """The installed wandb client does not fit the per-task globals: ``wandb.run``, ``wandb.log``
    ... follow wandb's own rule (the last run started) in this process."""


_degraded: list[str] = []  # why the per-task globals are off in this process (said once)


def bind(run: Any) -> Binding:
    """Count ``run`` as live; the first installs the call-aware class (a client that does not
    fit leaves the module as wandb made it, with one warning, never a failed task)."""
    binding = Binding(run)
    with _lock:
        if not _live and _wandb_imported() and not _degraded:
            try:
                _install()
            except Exception as exc:
                _degraded.append(repr(exc))
                warnings.warn(
                    "wandb.run, wandb.log and the other module-level helpers cannot follow each "
                    "task's run with this wandb client, so they follow wandb's own rule in this "
                    f"process (use get_wandb_run() inside tasks): {exc!r}",
                    WandbGlobalsUnavailable,
                    stacklevel=4,
                )
        _live[id(binding)] = binding
    return binding


def _wandb_imported() -> bool:
    """Whether wandb is imported completely (not still importing in another thread)."""
    mod = sys.modules.get("wandb")
    spec = getattr(mod, "__spec__", None)
    return mod is not None and not getattr(spec, "_initializing", False)


def release(binding: Binding) -> None:
    """End ``binding`` (once); after the last live run, wandb's module is as it was."""
    with _lock:
        if binding.released:
            return
        binding.released = True
        del _live[id(binding)]
        if not _live:
            _uninstall()


def installed() -> bool:
    """Whether wandb's module currently answers per call (some plugin run is live)."""
    return _saved_class is not None


def _install() -> None:
    global _saved_class
    mod = sys.modules["wandb"]
    original = type(mod)
    cls = _classes.get(original)
    if cls is None:
        cls = _classes[original] = _call_aware_class(original)
    _saved_class = original
    mod.__class__ = cls


def _uninstall() -> None:
    global _saved_class
    mod = sys.modules.get("wandb")
    if mod is not None and _saved_class is not None and type(mod) is _classes.get(_saved_class):
        mod.__class__ = _saved_class
    _saved_class = None


def _helper_names() -> tuple[str, ...]:
    """What wandb points at the current run: its ``set_global``'s parameters."""
    from wandb.sdk.lib import module

    return tuple(inspect.signature(module.set_global).parameters)


def _call_aware_class(original: type) -> type:
    namespace: dict[str, Any] = {name: _helper(name) for name in _helper_names()}
    namespace["init"] = _init_property(sys.modules["wandb"].__dict__["init"])
    namespace["__slots__"] = ()
    return type(original.__name__, (original,), namespace)


def _helper(name: str) -> property:
    """Inside a call with a live run, the run (``run``) or its attribute; else the module's."""

    def get(mod: types.ModuleType) -> Any:
        run = _visible_run()
        if run is not None:
            return run if name == "run" else getattr(run, name)
        try:
            return mod.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'wandb' has no attribute {name!r}") from None

    def set_(mod: types.ModuleType, value: Any) -> None:
        mod.__dict__[name] = value

    def delete(mod: types.ModuleType) -> None:
        del mod.__dict__[name]

    return property(get, set_, delete)


def _init_property(client_init: Callable[..., Any]) -> property:
    """``wandb.init`` is :func:`_init` (with the client's signature) while installed."""

    @functools.wraps(client_init)
    def init(*args: Any, **kwargs: Any) -> Any:
        return _init(args, kwargs)

    def set_(mod: types.ModuleType, value: Any) -> None:
        mod.__dict__["init"] = value

    return property(lambda mod: init, set_)


def _init(args: Any, kwargs: Any) -> Any:
    """``wandb.init(...)`` while plugin runs are live.

    By the plugin itself or with ``reinit="create_new"``: the client's. Inside a call with a live
    run: that run (``_user_init.adopt``; leaving ``with wandb.init()`` or ``run.finish()`` ends it
    early, as wandb's ``reinit="return_previous"`` does). Elsewhere: the client's, seeing only
    the user's own runs, so ``reinit`` and ``resume="must"`` behave as without the plugin.
    """
    real = sys.modules["wandb"].__dict__["init"]
    if getattr(STARTING, "on", False):
        return real(*args, **kwargs)
    from . import _user_init

    arguments = dict(inspect.signature(real).bind(*args, **kwargs).arguments)
    if _user_init.reinit_of(arguments) == "create_new":
        return real(*args, **kwargs)
    run = _visible_run()
    if run is not None:
        return _user_init.adopt(run, arguments)
    with _lock:
        ours = {id(b.run) for b in _live.values()}
    return _user_init.init_as_guest(real, args, kwargs, ours)
