"""A user's own ``wandb.init()`` while plugin runs are live (HF/Lightning callbacks, W&B's
quickstart inside a task); imported at the first such call. Part of the per-task globals."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ._backend import _INIT_LOCK
from ._state import is_finished

# init() arguments that can be compared with what the call's run already has.
_RUN_FIELDS = ("entity", "project", "name", "id", "group", "job_type", "notes")


class WandbInitInTaskWarning(UserWarning):
    """``wandb.init()`` inside a ``@wandb_init`` call returned the call's run, ignoring the
    arguments the warning names."""


def reinit_of(arguments: dict[str, Any]) -> Any:
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


def adopt(run: Any, arguments: dict[str, Any]) -> Any:
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


def init_as_guest(real: Callable[..., Any], args: Any, kwargs: Any, ours: set[int]) -> Any:
    """The client's ``wandb.init`` with the plugin's runs (ids in ``ours``) hidden from its active
    runs (which it would return or finish); runs start one at a time (``_INIT_LOCK``)."""
    from wandb.sdk import wandb_setup

    with _INIT_LOCK:
        setup = wandb_setup.singleton()
        if not hasattr(setup, "_active_runs_lock") or not hasattr(setup, "_active_runs"):
            return real(*args, **kwargs)  # another client: wandb's own behaviour
        with setup._active_runs_lock:
            hidden = [r for r in setup._active_runs if id(r) in ours]
            setup._active_runs[:] = [r for r in setup._active_runs if id(r) not in ours]
        try:
            return real(*args, **kwargs)
        finally:
            with setup._active_runs_lock:
                back = [r for r in hidden if not is_finished(r) and r not in setup._active_runs]
                setup._active_runs[:0] = back
