"""The one place that imports and calls the wandb client.

Everything else in the package works on plain values; this module turns an init request into
``wandb.init`` and a run into ``finish``. It is imported only when a process actually starts a run,
so a process that the plan leaves silent never imports wandb.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import _client, _resilience

# The client's process-wide setup (settings read from the environment, login) is not safe against
# concurrent first calls: two tasks starting runs at once in one process (Flyte local mode runs
# child tasks as threads) were seen to log in online despite WANDB_MODE=offline. Runs are
# started one at a time; logging and finishing stay concurrent.
_INIT_LOCK = threading.Lock()


#: ``starting`` is true on the thread where the plugin itself is calling ``wandb.init`` (the
#: per-task ``wandb.init`` of ``_globals`` then hands the call to the client unchanged).
STARTING = threading.local()


def _init(wandb: Any, settings: Any, kwargs: dict[str, Any]) -> Any:
    with _INIT_LOCK:
        STARTING.on = True
        try:
            return wandb.init(settings=settings, **kwargs)
        finally:
            STARTING.on = False


class WandbApiKeyMissing(RuntimeError):
    """Online W&B was requested but no API key can be found."""


@dataclass
class InitRequest:
    """What to start, as the resolver decided it.

    ``kwargs`` go to ``wandb.init``; ``settings`` is the user's own ``settings=`` (a dict or a
    ``wandb.Settings``), ``extra_settings`` the fields the plugin sets on it (server, shared-mode
    role, sweep trial, per-rank GPU); ``server`` names the server in messages.
    """

    server: _client.Server
    kwargs: dict[str, Any] = field(default_factory=dict)
    shared: bool = False
    label: str | None = None
    settings: Any = None
    extra_settings: dict[str, Any] = field(default_factory=dict)


def effective_mode(requested: str | None) -> str:
    """The mode the client will run in: the request, else ``WANDB_MODE``, else online."""
    mode = requested or os.environ.get("WANDB_MODE") or "online"
    if mode in ("dryrun",):
        return "offline"
    if mode == "run":
        return "online"
    return mode


def missing_key(mode: str, server: _client.Server, settings: Any = None) -> Exception | None:
    """The error naming both fixes when an online run has no API key anywhere, else ``None``.

    Asked after the client refused to start (a ``wandb.errors.UsageError``), so a key the process
    gave ``wandb.login`` counts. The key itself is never read into a message, only whether one
    exists.
    """
    if mode not in ("online", "shared"):
        return None
    from ._client_env import has_api_key

    if has_api_key(server.api_url, settings):
        return None
    return WandbApiKeyMissing(
        f"W&B is online (mode={mode!r}, server {server.api_url}, from {server.source}) but no "
        "API key was found for it (WANDB_API_KEY, `wandb login`, netrc). Either give the "
        "task the key as a secret exposed as WANDB_API_KEY, e.g. "
        'secrets=flyte.Secret(key="wandb_api_key", as_env_var="WANDB_API_KEY"), or log '
        "offline with WANDB_MODE=offline (or wandb_config(mode='offline'))."
    )


def planned_mode(request: InitRequest) -> str:
    """The mode the run of ``request`` starts in: ``mode=``, the user's ``settings`` mode, the
    environment; a shared run online is ``"shared"``. Known without importing wandb."""
    requested = request.kwargs.get("mode")
    settings = request.settings
    if requested is None and isinstance(settings, dict):
        requested = settings.get("mode")
    elif requested is None and "mode" in getattr(settings, "model_fields_set", ()):
        requested = settings.mode
    mode = effective_mode(requested)
    return "shared" if request.shared and mode == "online" else mode


def init_run(request: InitRequest) -> Any:
    """Start a run as ``request`` says and return the ``wandb.Run``.

    ``reinit="create_new"`` lets several runs live in one process (a child task's own run next to
    its parent's, concurrent tasks); which run ``wandb.run`` points at is managed by the caller.
    """
    import wandb

    kwargs = dict(request.kwargs)
    resilience = _resilience.pop_plugin_settings(kwargs)
    settings = request.settings
    if settings is None:
        settings = wandb.Settings()
    elif isinstance(settings, dict):
        settings = wandb.Settings(**settings)
    else:
        settings = settings.model_copy()
    for key, value in request.extra_settings.items():
        setattr(settings, key, value)
    if settings.sweep_param_path:
        # The client reads a trial's parameters once per process setup; a setup that predates
        # the trial (an enclosing task's run) would miss them, so they are passed as config.
        kwargs["config"] = {**(kwargs.get("config") or {}), **_trial_params(settings)}
    mode = planned_mode(request)
    if mode == "shared":
        kwargs["mode"] = "shared"
    if (
        request.shared
        and mode == "offline"
        and request.label
        and "x_sync_dir_suffix" not in settings.model_fields_set
    ):
        # Offline, every writer of a shared run keeps its own folder. The client names it
        # offline-run-<start second>-<id>: ranks of one job starting in the same second would
        # otherwise write into one folder and one run file.
        settings.x_sync_dir_suffix = request.label
    kwargs.setdefault("reinit", "create_new")
    _resilience.apply_bounds(settings, resilience)
    base_url = request.server.api_url
    if resilience.offline_fallback and mode in ("online", "shared"):
        # Decided before wandb.init: after a failed init the client keeps the run id taken in
        # this process, so a second (offline) init with the same id would be refused.
        down = _resilience.probe(base_url, settings)
        if down is not None:
            kwargs["mode"] = "offline"
            run = _init(wandb, settings, kwargs)
            _resilience.warn_offline_fallback(base_url, down, run)
            return run
    started = time.monotonic()
    try:
        return _init(wandb, settings, kwargs)
    except wandb.errors.UsageError as exc:
        missing = missing_key(mode, request.server, settings)
        if missing is None:
            raise
        raise missing from exc
    except Exception as exc:
        if mode not in ("online", "shared") or not _resilience.is_server_failure(exc):
            raise
        raise _resilience.unreachable(base_url, time.monotonic() - started, exc) from exc


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
    """Flush and close ``run``, recording ``exit_code`` (0 success, anything else failure).

    The upload after the task's code is bounded by ``finish_timeout``; a warning names what was
    not uploaded, the time spent and how to sync it from the run's local folder. ``since`` (a
    ``time.monotonic()`` value) is when finishing began, when that was before this call (a
    shared run's primary first waits for the other writers); ``limit`` and ``share`` are the
    budget the writers of a shared run split (see ``_shared_finish.SharedFinish``).
    """
    called = time.monotonic()
    started = called if since is None else since
    run.finish(exit_code=exit_code)
    now = time.monotonic()
    _resilience.report_incomplete_upload(
        run, now - started, limit=limit, share=share, own_s=now - called
    )


def mark_preempting(run: Any) -> None:
    """Tell W&B the run is being preempted (it may resume later)."""
    run.mark_preempting()
