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

from ._backend import _INIT_LOCK, STARTING
from ._extension import Extension
from ._flyte import in_scope
from ._state import active_var, is_finished

# init() arguments that can be compared with what the call's run already has.
_RUN_FIELDS = ("entity", "project", "name", "id", "group", "job_type", "notes")


class WandbInitInTaskWarning(UserWarning):
    """``wandb.init()`` inside a ``@wandb_init`` call returned the call's run, ignoring the
    arguments the warning names."""


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


def _reinit(arguments: dict[str, Any]) -> Any:
    """The ``reinit`` asked for: argument, ``settings=``, process."""
    if arguments.get("reinit") is not None:
        return arguments["reinit"]
    settings = arguments.get("settings")
    if isinstance(settings, dict) and settings.get("reinit") is not None:
        return settings["reinit"]
    if settings is not None and "reinit" in getattr(settings, "model_fields_set", ()):
        return settings.reinit
    from wandb.sdk import wandb_setup

    return wandb_setup.singleton().settings.reinit


def _init(args: Any, kwargs: Any) -> Any:
    """``wandb.init(...)`` while plugin runs are live.

    By the plugin itself or with ``reinit="create_new"``: the client's. Inside a call with a live
    run: that run (:func:`_adopt`; leaving ``with wandb.init()`` or ``run.finish()`` ends it
    early, as wandb's ``reinit="return_previous"`` does). Elsewhere: the client's, seeing only
    the user's own runs, so ``reinit`` and ``resume="must"`` behave as without the plugin.
    """
    real = sys.modules["wandb"].__dict__["init"]
    if getattr(STARTING, "on", False):
        return real(*args, **kwargs)
    arguments = dict(inspect.signature(real).bind(*args, **kwargs).arguments)
    if _reinit(arguments) == "create_new":
        return real(*args, **kwargs)
    run = _visible_run()
    if run is not None:
        return _adopt(run, arguments)
    return _init_as_guest(real, args, kwargs)


def _adopt(run: Any, arguments: dict[str, Any]) -> Any:
    """Apply what ``wandb.init(**arguments)`` can to ``run`` (new config keys; all with
    ``allow_val_change``); name the rest in one :class:`WandbInitInTaskWarning`."""
    from wandb.sdk.wandb_helper import parse_config

    ignored: list[str] = []
    config = arguments.pop("config", None)
    include = arguments.pop("config_include_keys", None)
    exclude = arguments.pop("config_exclude_keys", None)
    change = bool(arguments.pop("allow_val_change", None))
    if config is not None:
        given = parse_config(config, include=include, exclude=exclude)  # type: ignore[no-untyped-call]
        taken = {k: v for k, v in given.items() if change or k not in run.config}
        kept = sorted(k for k in given if k not in taken and run.config[k] != given[k])
        if taken:
            run.config.update(taken, allow_val_change=change)
        if kept:
            ignored.append(f"config keys {kept} (the run already has other values)")
    for key, value in arguments.items():
        if value is None or (key == "reinit" and value in (False, "default", "return_previous")):
            continue
        if key in _RUN_FIELDS and getattr(run, key, None) == value:
            continue
        if key == "tags" and tuple(getattr(run, "tags", ()) or ()) == tuple(value):
            continue
        ignored.append("settings=..." if key == "settings" else f"{key}={value!r}")
    if ignored:
        warnings.warn(
            f"wandb.init() inside a @wandb_init call returned that call's run {run.id!r} instead "
            f"of starting another; not applied: {', '.join(ignored)}. Set these on @wandb_init "
            "or wandb_config(...), or pass reinit='create_new' for a separate run.",
            WandbInitInTaskWarning,
            stacklevel=4,
        )
    return run


def _init_as_guest(real: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """The client's ``wandb.init`` with the plugin's runs hidden from its active runs (which it
    would return or finish); runs start one at a time (``_INIT_LOCK``), so none starts meanwhile."""
    from wandb.sdk import wandb_setup

    with _INIT_LOCK:
        setup = wandb_setup.singleton()
        if not hasattr(setup, "_active_runs_lock") or not hasattr(setup, "_active_runs"):
            return real(*args, **kwargs)  # another client: wandb's own behaviour
        with _lock:
            ours = {id(b.run) for b in _live.values()}
        with setup._active_runs_lock:
            hidden = [r for r in setup._active_runs if id(r) in ours]
            setup._active_runs[:] = [r for r in setup._active_runs if id(r) not in ours]
        try:
            return real(*args, **kwargs)
        finally:
            with setup._active_runs_lock:
                back = [r for r in hidden if not is_finished(r) and r not in setup._active_runs]
                setup._active_runs[:0] = back
