"""The one place that imports and calls the wandb client.

Everything else in the package works on plain values; this module turns an init request into
``wandb.init`` and a run into ``finish``. It is imported only when a process actually starts a run,
so a process that the plan leaves silent never imports wandb.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import _client, _resilience

# The client's process-wide setup (settings read from the environment, login) is not safe against
# concurrent first calls: two tasks starting runs at once in one process (Flyte local mode runs
# child tasks as threads) were seen to log in online despite WANDB_MODE=offline. Runs are
# started one at a time; logging and finishing stay concurrent.
_INIT_LOCK = threading.Lock()


def _init(
    wandb: Any,
    settings: Any,
    kwargs: dict[str, Any],
    on_started: Callable[[Any], None] | None = None,
) -> Any:
    with _INIT_LOCK:
        run = wandb.init(settings=settings, **kwargs)
        if on_started is not None:  # before another init may look at the client's active runs
            on_started(run)
        return run


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
    #: The node's shared wandb-core service to attach to (a ``_distributed.NodeService``).
    node_service: Any = None
    #: Set by :func:`init_run`: this start connected the process to the node's service (the
    #: process had no connection to a service before), so :func:`detach` undoes it at the end.
    attached: bool = False


def effective_mode(requested: str | None) -> str:
    """The mode the client will run in: the request, else ``WANDB_MODE``, else online."""
    mode = requested or os.environ.get("WANDB_MODE") or "online"
    if mode in ("dryrun",):
        return "offline"
    if mode == "run":
        return "online"
    return mode


def check_api_key(mode: str, server: _client.Server, settings: Any = None) -> None:
    """Fail early, naming both fixes, when an online run has no API key anywhere.

    The key itself is never read into a message: only whether one exists.
    """
    if mode not in ("online", "shared"):
        return
    if _client.has_api_key(server.api_url, settings):
        return
    raise WandbApiKeyMissing(
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


def start_node_service(idle_timeout: str) -> str:
    """Start a detached wandb-core service (no process owns it) and return its token."""
    import wandb
    from wandb.sdk.lib.service import service_process

    proc = service_process.start_detached(wandb.Settings(), idle_timeout=idle_timeout)
    return str(proc.token.env_value)


@contextmanager
def _attached_to(token: str | None) -> Iterator[None]:
    """``WANDB_SERVICE`` names the node's service while a run starts (wandb reads it when the
    process first connects), then is as it was."""
    if token is None:
        yield
        return
    saved = os.environ.get("WANDB_SERVICE")
    os.environ["WANDB_SERVICE"] = token
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WANDB_SERVICE", None)
        else:
            os.environ["WANDB_SERVICE"] = saved


def _connected() -> bool:
    """Whether this process's wandb already has its connection to a service (it reads
    ``WANDB_SERVICE`` only when it makes that connection)."""
    from wandb.sdk import wandb_setup

    setup = wandb_setup._singleton
    return setup is not None and setup._pid == os.getpid() and setup._connection is not None


def init_run(request: InitRequest, on_started: Callable[[Any], None] | None = None) -> Any:
    """Start a run as ``request`` says and return the ``wandb.Run`` (attached to the node's
    shared service when the request names one and the process has no service yet)."""
    token = None
    if request.node_service is not None and not _connected():
        token = request.node_service.token(start_node_service)
    with _attached_to(token):
        run = _init_run(request, on_started)
    request.attached = token is not None
    return run


def detach(request: InitRequest | None) -> None:
    """After the run of ``request`` ended: a process its start connected to the node's service
    is disconnected again once none of its runs is live, so a later run of the process (a
    shared-mode writer, which must keep a service of its own) connects afresh. The service
    itself stays up for the node's other ranks.

    ``wandb.teardown()`` also forgets the session's credentials; the ones the process had (a key
    given to ``wandb.login(key=...)`` that could not be saved, e.g. with a read-only home) are
    given back (without a new client setup), so the user's next run of the process starts as it
    would have without us: its settings are read when it starts, with the key it had."""
    if request is None or not request.attached:
        return
    request.attached = False
    from wandb.sdk import wandb_setup

    setup = wandb_setup._singleton
    if setup is None or setup.most_recent_active_run is not None:
        return
    import wandb
    from wandb.sdk.lib import wbauth
    from wandb.sdk.lib.wbauth import authenticate

    kept = wbauth.unauthenticate_session(update_settings=False)
    try:
        wandb.teardown()
    finally:
        if kept is not None:
            # Not wbauth.use_explicit_auth: it would set the key on a new client setup, loading
            # the client's settings now instead of when the process's next run starts.
            with authenticate._session_auth_lock:
                authenticate._locked_set_session_auth(kept, update_settings=False)


def _init_run(request: InitRequest, on_started: Callable[[Any], None] | None) -> Any:
    """Start a run as ``request`` says and return the ``wandb.Run``.

    ``on_started(run)`` is called as soon as the client returned the run, while no other run of
    the process can start (a run starting in the background learns its client run there).

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
        from wandb.sdk.lib import config_util

        params = config_util.dict_from_config_file(settings.sweep_param_path, must_exist=True)
        kwargs["config"] = {**(kwargs.get("config") or {}), **(params or {})}
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
    check_api_key(mode, request.server, settings)
    kwargs.setdefault("reinit", "create_new")
    _resilience.apply_bounds(settings, resilience)
    base_url = request.server.api_url
    if resilience.offline_fallback and mode in ("online", "shared"):
        # Decided before wandb.init: after a failed init the client keeps the run id taken in
        # this process, so a second (offline) init with the same id would be refused.
        down = _resilience.probe(base_url, settings)
        if down is not None:
            kwargs["mode"] = "offline"
            run = _init(wandb, settings, kwargs, on_started)
            _resilience.warn_offline_fallback(base_url, down, run)
            return run
    started = time.monotonic()
    try:
        return _init(wandb, settings, kwargs, on_started)
    except Exception as exc:
        if mode not in ("online", "shared") or not _resilience.is_server_failure(exc):
            raise
        raise _resilience.unreachable(base_url, time.monotonic() - started, exc) from exc


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
    budget the writers of a shared run split (see ``_distributed.SharedFinish``).
    """
    started = time.monotonic() if since is None else since
    run.finish(exit_code=exit_code)
    _resilience.report_incomplete_upload(run, time.monotonic() - started, limit=limit, share=share)


def mark_preempting(run: Any) -> None:
    """Tell W&B the run is being preempted (it may resume later)."""
    run.mark_preempting()
