"""Running a sweep's trials here: one trial (an ordinary ``@wandb_init`` run set up through the
task-local context, so concurrent trials cannot mix), ``run_agent``, and the specification's
``wandb.agent(get_wandb_sweep_id(), ...)`` on a local sweep."""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb.ext import client_server, live_run_ids, server_url

from ._context import current_sweep, is_offline
from ._controller import LocalSweep, Trial, find_path, lookup, trial_tags
from ._state import SweepRef

logger = logging.getLogger(__name__)
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
_MAINS = ("__main__", "__mp_main__")  # a script's module, as run and as a worker imports it
TRACEBACK_KEY = "traceback"  # summary key of a failed local trial's run: the full traceback


class SweepTrialsFailed(RuntimeError):
    """Every trial an agent ran failed, or too many in a row (the first error is attached)."""


def _format_error(exc: BaseException, function: Callable[[], Any]) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    script = getattr(sys.modules.get("__mp_main__"), "__file__", None)
    in_worker = multiprocessing.parent_process() is not None
    if isinstance(exc, OSError) and script and in_worker and function.__module__ in _MAINS:
        text += (
            f"\n\nThis trial ran in a worker process of a local parallel agent, which imported "
            f"your script {script} again to find the objective: the script's top-level code "
            "ran again in the worker, and code there that removes files or folders, creates "
            "them or changes directory has changed what the trial sees. Put that code, and the "
            'Flyte run, under `if __name__ == "__main__":` (see the sweeps guide).'
        )
    return text


@contextmanager
def _metric_rows(run: Any, metric: str | None, rows: list[dict[str, Any]]) -> Iterator[None]:
    """In the block, each ``run.log`` of ``metric`` (``a.b`` may be nested) adds ``{metric: value}``
    to ``rows``."""
    if metric is None:
        yield
        return
    own = vars(run)
    had, before, client_log = "log" in own, own.get("log"), run.log

    @functools.wraps(client_log)
    def log(data: Any, *args: Any, **kwargs: Any) -> Any:
        result = client_log(data, *args, **kwargs)  # first: a refused call records nothing
        flat = isinstance(data, Mapping) and metric in data
        found, value = (True, data[metric]) if flat else find_path(data, metric.split("."))
        rows.extend([{metric: value}] if found else [])
        return result

    run.log = log
    try:
        yield
    finally:
        own.pop("log", None)
        if had:
            own["log"] = before


def run_trial(
    function: Callable[[], Any],
    *,
    sweep_id: str,
    run_id: str,
    params: dict[str, Any],
    project: str | None = None,
    entity: str | None = None,
    metric: str | None = None,
    flyte: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one trial of a local sweep in its own run (id ``run_id``, config ``params``, grouped and
    tagged by the sweep), which the objective's ``@wandb_init`` and ``wandb.log`` reach; a
    failure's traceback goes into its summary. ``flyte``: the Flyte action to record where the
    plugin cannot see it (a worker). Returns JSON data: ``run_id``, ``state``, ``summary``,
    ``history`` (the ``metric`` values logged), ``error``."""
    seen: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []

    def trial() -> None:
        run = get_wandb_run()
        if run is None:  # the plan leaves this process silent: nothing to record into
            function()
            return
        seen["run"] = run.id
        try:  # the objective's own @wandb_init joins this run, whatever the context asks for
            with _metric_rows(run, metric, rows), wandb_config(run_mode="auto"):
                function()
        except Exception as exc:
            seen["error"] = run.summary[TRACEBACK_KEY] = _format_error(exc, function)
            raise
        finally:
            seen["summary"] = json.loads(json.dumps(dict(run.summary), default=str))

    config = {**params, "flyte": flyte} if flyte else params
    where: dict[str, Any] = {"project": project, "entity": entity, "group": sweep_id}
    where["tags"] = trial_tags(sweep_id)
    error: str | None = None
    try:
        wandb_init(run_mode="new", id=run_id, config=config, **where)(trial)()
    except Exception as exc:
        error = seen.get("error") or _format_error(exc, function)
        logger.warning("sweep %s: trial %s failed:\n%s", sweep_id, run_id, error)
    if "run" not in seen and error is None:
        error = (
            f"no W&B run was started for trial {run_id!r}: this process does not log to W&B "
            "(a non-zero rank of a distributed job?)"
        )
    outcome = {"run_id": run_id, "state": "finished" if error is None else "failed"}
    history = json.loads(json.dumps(rows, default=str))
    return {**outcome, "summary": seen.get("summary", {}), "history": history, "error": error}


def report(sweep: LocalSweep, outcome: Mapping[str, Any]) -> Trial:
    """Give the controller what :func:`run_trial` returned."""
    fields: dict[str, Any] = {k: outcome.get(k) for k in ("state", "summary", "history", "error")}
    return sweep.report(outcome["run_id"], **fields)


def check_count(sweep: LocalSweep | None, count: object) -> None:
    """Refuse a ``count`` that is not a positive int, or none for a sweep that never ends."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive int or None, got {count!r}")
    if sweep is not None and count is None and sweep.method != "grid" and sweep.run_cap is None:
        raise ValueError(
            f"a {sweep.method} sweep never runs out of trials: give count= (or run_cap in the "
            "sweep configuration)"
        )


def run_local(
    sweep: LocalSweep,
    function: Callable[[], Any],
    count: int | None,
    *,
    max_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
) -> dict[str, Any]:
    """One agent on a local sweep, here: trials one after another; the sweep's results."""
    check_count(sweep, count)
    done = len(sweep.claim_restored(count))  # finished by an earlier attempt of the task
    failures, first_error = 0, None
    while count is None or done < count:
        trials = sweep.propose(1)
        if not trials:
            break
        sweep.mark_running(trials[0].run_id)
        run: dict[str, Any] = {"sweep_id": sweep.sweep_id, "run_id": trials[0].run_id}
        run |= {"project": sweep.project, "entity": sweep.entity, "metric": sweep.metric_name}
        result = report(sweep, run_trial(function, params=trials[0].params, **run))
        done += 1
        failures = 0 if result.state == "finished" else failures + 1
        first_error = first_error or result.error
        if failures >= max_failures:
            raise SweepTrialsFailed(
                f"sweep {sweep.sweep_id}: {failures} trials in a row failed; first error: "
                f"{first_error}"
            )
    return summarize(sweep)


def summarize(sweep: LocalSweep) -> dict[str, Any]:
    """The sweep's results; raises :class:`SweepTrialsFailed` when every trial failed."""
    results = sweep.results()
    if results["best"] is not None:
        logger.info("sweep %s: best trial %s", sweep.sweep_id, results["best"])
    trials = results["trials"]
    if trials and all(t["state"] != "finished" for t in trials):
        raise SweepTrialsFailed(
            f"sweep {sweep.sweep_id}: all {len(trials)} trials failed; first error: "
            f"{trials[0]['error']}"
        )
    return results


# wandb.agent keeps its trial assignment in process-wide environment variables and tears the
# client down between trials: two in one process at once would mix their trials.
_wandb_agent_lock = threading.Lock()


def current_ref(sweep_id: str | None) -> SweepRef:
    """The sweep ``sweep_id`` names (default: the current one), with what is known of it."""
    ref, local = current_sweep(), lookup(sweep_id or "")
    if sweep_id is None and ref is None:
        raise ValueError("no sweep to run: call this inside a @wandb_sweep task, or pass sweep_id=")
    if ref is not None and sweep_id in (None, ref.id):
        return ref
    if local is not None:
        return SweepRef(str(sweep_id), local.project, local.entity, None, local=True)
    return SweepRef(str(sweep_id), ref.project if ref else None, ref.entity if ref else None)


def client_host(host: str | None) -> AbstractContextManager[None]:
    """Point ``wandb.sweep``/``wandb.agent`` at the server ``host`` names, for the block."""
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
    """The client's own ``wandb.agent`` on a server sweep, one at a time in this process, and
    never beside an open ``@wandb_init`` run (it tears the client down before each trial)."""
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
    """The client's own ``wandb.agent``."""
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
    """``wandb.agent`` while a ``@wandb_sweep`` task runs: a local sweep of this process runs
    here; one controlled elsewhere, or any id while offline, is an error naming ``run_agent``;
    a server sweep runs on the client's agent (on the server the task's settings name)."""
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
    """Within the block, ``wandb.agent`` is :func:`_wandb_agent`; afterwards the client's own
    (concurrent blocks share one replacement; one made by someone else meanwhile is kept)."""
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
    ``sweep_id`` defaults to the task's sweep; ``function`` (no arguments) runs once per trial in
    its W&B run, reading its parameters from ``wandb.config``; ``count`` caps the trials. Returns
    a local sweep's results, ``None`` for a server sweep."""
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
