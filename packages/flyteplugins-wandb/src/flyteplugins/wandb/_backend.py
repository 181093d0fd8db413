"""The one module that starts and finishes runs with the wandb client (imported by a process
that starts a run; a process the plan leaves silent never imports wandb)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import _client, _resilience

# The client's process-wide setup is not safe against concurrent first calls (two local tasks
# starting at once were seen to log in online despite WANDB_MODE=offline): runs start one at a
# time; logging and finishing stay concurrent.
_INIT_LOCK = threading.Lock()

#: ``STARTING.on`` is true on the thread where the plugin itself calls ``wandb.init`` (the
#: per-task ``wandb.init`` of ``_globals`` then hands the call to the client unchanged).
STARTING = threading.local()


@dataclass
class InitRequest:
    """What to start, as the resolver decided it: ``kwargs`` for ``wandb.init``, the user's
    ``settings=`` (dict or ``wandb.Settings``) and the fields the plugin sets on it."""

    server: _client.Server
    kwargs: dict[str, Any] = field(default_factory=dict)
    shared: bool = False
    label: str | None = None
    settings: Any = None
    extra_settings: dict[str, Any] = field(default_factory=dict)


def effective_mode(requested: str | None) -> str:
    """The mode the client will run in: the request, else ``WANDB_MODE``, else online."""
    mode = requested or os.environ.get("WANDB_MODE") or "online"
    return {"dryrun": "offline", "run": "online"}.get(mode, mode)


def planned_mode(request: InitRequest) -> str:
    """The mode ``request``'s run starts in (``"shared"`` for a shared run online)."""
    requested, settings = request.kwargs.get("mode"), request.settings
    if requested is None and isinstance(settings, dict):
        requested = settings.get("mode")
    elif requested is None and "mode" in getattr(settings, "model_fields_set", ()):
        requested = settings.mode
    mode = effective_mode(requested)
    return "shared" if request.shared and mode == "online" else mode


def _init(settings: Any, kwargs: dict[str, Any]) -> Any:
    import wandb

    with _INIT_LOCK:
        STARTING.on = True
        try:
            return wandb.init(settings=settings, **kwargs)
        finally:
            STARTING.on = False


def init_run(request: InitRequest) -> Any:
    """Start ``request``'s run (``reinit="create_new"``: several runs live in one process;
    which one ``wandb.run`` shows is ``_globals``' business) and return it."""
    import wandb

    kwargs = dict(request.kwargs)
    resilience = _resilience.pop_plugin_settings(kwargs)
    settings = request.settings
    if settings is None or isinstance(settings, dict):
        settings = wandb.Settings(**(settings or {}))
    else:
        settings = settings.model_copy()
    for key, value in request.extra_settings.items():
        setattr(settings, key, value)
    if settings.sweep_param_path:
        # The client reads a trial's parameters once per process setup, which may predate the
        # trial (an enclosing task's run): pass them as config.
        kwargs["config"] = {**(kwargs.get("config") or {}), **_trial_params(settings)}
    mode = planned_mode(request)
    if mode == "shared":
        kwargs["mode"] = "shared"
    # Offline, each writer of a shared run keeps its own folder, named by the second it started
    # and the id: ranks starting in the same second would share one.
    own_suffix = "x_sync_dir_suffix" in settings.model_fields_set
    if request.shared and mode == "offline" and request.label and not own_suffix:
        settings.x_sync_dir_suffix = request.label
    kwargs.setdefault("reinit", "create_new")
    _resilience.apply_bounds(settings, resilience)
    base_url = request.server.api_url
    online = mode in _resilience.ONLINE_MODES
    if resilience.offline_fallback and online:
        from . import _failures

        # Decided before wandb.init: after a failed init the client keeps the run id taken in
        # this process and would refuse a second (offline) init with it.
        down = _failures.probe(base_url, settings)
        if down is not None:
            run = _init(settings, {**kwargs, "mode": "offline"})
            _failures.warn_offline_fallback(base_url, down, run)
            return run
    started = time.monotonic()
    try:
        return _init(settings, kwargs)
    except Exception as exc:
        from . import _failures

        if isinstance(exc, wandb.errors.UsageError):
            missing = _failures.missing_key(mode, request.server, settings)
            if missing is not None:
                raise missing from exc
        elif online and _failures.is_server_failure(exc):
            raise _failures.unreachable(base_url, time.monotonic() - started, exc) from exc
        raise


def _trial_params(settings: Any) -> dict[str, Any]:
    """A sweep trial's parameters, from the file the agent wrote (``{name: {"value": v}}``)."""
    import yaml  # a dependency of wandb

    with open(settings.sweep_param_path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    return {
        k: v["value"] if isinstance(v, dict) and "value" in v else v
        for k, v in raw.items()
        if k != "_wandb"
    }


def finish_run(
    run: Any,
    exit_code: int,
    *,
    since: float | None = None,
    limit: float | None = None,
    share: float | None = None,
) -> None:
    """Finish ``run`` with ``exit_code``; warn when its upload ran into ``finish_timeout``.

    ``since``: when finishing began, if before this call (a shared run's primary first waits for
    the other writers); ``limit``/``share``: the budget the writers of a shared run split.
    """
    called = time.monotonic()
    run.finish(exit_code=exit_code)
    now = time.monotonic()
    if getattr(getattr(run, "settings", None), "mode", None) in _resilience.ONLINE_MODES:
        from ._failures import report_incomplete_upload

        elapsed = now - (called if since is None else since)
        report_incomplete_upload(run, elapsed, limit=limit, share=share, own_s=now - called)


def mark_preempting(run: Any) -> None:
    """Tell W&B the run is being preempted (it may resume later)."""
    run.mark_preempting()
