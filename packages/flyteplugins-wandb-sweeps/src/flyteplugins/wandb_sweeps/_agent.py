"""Running a sweep's trials in this process: ``run_agent``, and ``wandb.agent`` on a local sweep.

While a ``@wandb_sweep`` task runs, :func:`local_wandb_agent` makes the specification's
``wandb.agent(get_wandb_sweep_id(), function=..., count=...)`` run a local sweep's trials too
(the module attribute ``wandb.agent`` is replaced for the length of the task, then put back).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from flyteplugins.wandb.ext import client_server, live_run_ids, server_url

from ._context import current_sweep, is_offline
from ._controller import lookup
from ._state import SweepRef
from ._trial import DEFAULT_MAX_CONSECUTIVE_FAILURES, check_count, run_local

# wandb.agent keeps its trial assignment in process-wide environment variables and tears the
# client down between trials: two in one process at once would mix their trials.
_wandb_agent_lock = threading.Lock()


def current_ref(sweep_id: str | None) -> SweepRef:
    """The sweep ``sweep_id`` names (default: the current one), with what is known of it."""
    ref = current_sweep()
    if sweep_id is None:
        if ref is None:
            raise ValueError(
                "no sweep to run: call this inside a @wandb_sweep task, or pass sweep_id="
            )
        return ref
    if ref is not None and ref.id == sweep_id:
        return ref
    local = lookup(sweep_id)
    if local is not None:
        return SweepRef(sweep_id, local.project, local.entity, None, local=True)
    return SweepRef(sweep_id, ref.project if ref else None, ref.entity if ref else None)


def client_host(host: str | None) -> AbstractContextManager[None]:
    """Point ``wandb.sweep`` / ``wandb.agent`` at the server ``host`` names for the block (the
    plugin's resolver decides the URL; the environment is restored after the block)."""
    return client_server(server_url({"host": host}) if host else None)


def server_agent(
    sweep_id: str,
    function: Callable[[], Any],
    count: int | None,
    project: str | None,
    entity: str | None,
    host: str | None,
    **options: Any,
) -> None:
    """The client's own ``wandb.agent`` on a server sweep, one at a time in this process.

    Refused while a ``@wandb_init`` run of this process is open: ``wandb.agent`` tears the
    client down before each trial, which would end it.
    """
    with _wandb_agent_lock, client_host(host):
        open_ids = list(live_run_ids())
        if open_ids:
            raise RuntimeError(
                f"cannot run wandb.agent while the W&B run(s) {open_ids} of this process are "
                "open: wandb.agent restarts the wandb client between trials, which would end "
                "them. Do not put @wandb_init on the task that runs the agent (or its local "
                "parent); decorate the objective instead, or use the local controller "
                "(local_controller=True)"
            )
        _client_agent()(
            sweep_id, function=function, count=count, project=project, entity=entity, **options
        )


_patch_lock = threading.Lock()
_patch_users = 0
_client_agent_fn: Any = None  # the client's wandb.agent while ours is installed


def _client_agent() -> Any:
    """The client's own ``wandb.agent`` (also while :func:`local_wandb_agent` is in effect)."""
    import wandb

    with _patch_lock:
        return _client_agent_fn if _client_agent_fn is not None else wandb.agent


def _agent_error(sweep_id: object, why: str) -> RuntimeError:
    return RuntimeError(
        f"wandb.agent({sweep_id!r}) cannot run here: {why}. Inside a @wandb_sweep task, "
        "run_agent(function=objective, count=N) runs the trials of its sweep (the local "
        'controller needs pip install "flyteplugins-wandb-sweeps[local]" when there is no W&B '
        "server), and run_parallel_agents(...) runs them in parallel agents"
    )


def _wandb_agent(
    sweep_id: str,
    function: Callable[[], Any] | None = None,
    entity: str | None = None,
    project: str | None = None,
    count: int | None = None,
    forward_signals: bool = False,
    term_timeout: int | None = None,
    max_consecutive_failed_runs: int | None = None,
) -> None:
    """``wandb.agent`` while a ``@wandb_sweep`` task runs in this process.

    A sweep this process's local controller runs: its trials, here. A local sweep controlled
    elsewhere, or any other id while W&B is offline: an error at once, naming ``run_agent``. The
    task's server sweep: the client's ``wandb.agent`` on the server its settings name. Anything
    else: the client's own ``wandb.agent``.
    """
    name = str(sweep_id).rstrip("/").rsplit("/", 1)[-1] if sweep_id else ""
    local, ref = lookup(name), current_sweep()
    if local is not None:
        if function is None:
            raise _agent_error(sweep_id, "a local sweep runs a function, pass function=")
        limit = max_consecutive_failed_runs or DEFAULT_MAX_CONSECUTIVE_FAILURES
        run_local(local, function, count, max_failures=limit)
        return
    if ref is not None and ref.local and ref.id == name:
        raise _agent_error(sweep_id, "its local controller runs in another process")
    if ref is not None and ref.id == name:  # the task's server sweep, on the server it names
        project, entity, host = project or ref.project, entity or ref.entity, ref.host
    elif is_offline():
        raise _agent_error(sweep_id, "W&B is offline and no local controller here runs that sweep")
    else:
        host = None
    options = {"forward_signals": forward_signals, "term_timeout": term_timeout}
    options["max_consecutive_failed_runs"] = max_consecutive_failed_runs
    server_agent(sweep_id, function, count, project, entity, host, **options)  # type: ignore[arg-type]


@contextmanager
def local_wandb_agent() -> Iterator[None]:
    """Within the block, ``wandb.agent`` is :func:`_wandb_agent`; afterwards the client's own.

    Concurrent blocks share one replacement; the last one to end puts the client's function back
    (unless something else replaced ``wandb.agent`` meanwhile, which is then left alone).
    """
    import wandb

    global _patch_users, _client_agent_fn
    with _patch_lock:
        if _patch_users == 0:
            _client_agent_fn = wandb.__dict__["agent"]
            wandb.__dict__["agent"] = functools.wraps(_client_agent_fn)(
                lambda *args, **kwargs: _wandb_agent(*args, **kwargs)
            )
        _patch_users += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                if getattr(wandb.__dict__.get("agent"), "__wrapped__", None) is _client_agent_fn:
                    wandb.__dict__["agent"] = _client_agent_fn
                _client_agent_fn = None


def run_agent(
    sweep_id: str | None = None,
    function: Callable[[], Any] | None = None,
    count: int | None = None,
    *,
    project: str | None = None,
    entity: str | None = None,
) -> dict[str, Any] | None:
    """Run sweep trials here: ``wandb.agent`` for a server sweep, else the local controller.

    ``sweep_id`` defaults to the sweep of the enclosing ``@wandb_sweep`` task. ``function`` (the
    objective) is called once per trial with no arguments, inside the trial's W&B run, and reads
    its parameters from ``get_wandb_run().config`` (or ``wandb.config``). ``count`` caps the
    number of trials (a grid sweep without one runs until the grid is exhausted). Returns the
    local sweep's results (every trial and the best one), or ``None`` for a server sweep (read
    it with ``wandb.Api().sweep(...)``).
    """
    if function is None or not callable(function):
        raise TypeError(f"function must be the callable objective, got {function!r}")
    check_count(None, count)
    ref = current_ref(sweep_id)
    local = lookup(ref.id)
    if local is not None:
        return run_local(local, function, count)
    if ref.local:
        raise RuntimeError(
            f"sweep {ref.id!r} is run by a local controller in another process; run its trials "
            "with run_parallel_agents() from the @wandb_sweep task that owns it"
        )
    server_agent(ref.id, function, count, project or ref.project, entity or ref.entity, ref.host)
    return None
