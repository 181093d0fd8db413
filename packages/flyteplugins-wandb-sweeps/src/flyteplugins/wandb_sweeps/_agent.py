"""Running sweep trials: in this process, in worker processes, or as parallel Flyte child tasks.

:func:`run_agent` is the one call user code needs: with a sweep on a W&B server it is
``wandb.agent``; with a sweep run by the local controller it asks the controller for trials and
runs them here. Either way the objective is called with no arguments, starts its run with
``@wandb_init`` and reads its parameters from ``run.config`` (or ``wandb.config``).

A local trial is an ordinary ``@wandb_init`` run whose settings come from the context: the run id
the controller chose, the trial's parameters as its config, the sweep id as its group and as a
tag. They travel in the task-local ``custom_context``, never in process-wide environment
variables, and inside the trial ``wandb.log`` / ``wandb.config`` / ``get_wandb_run()`` are that
trial's run (the plugin answers wandb's module-level helpers per decorated call), so trials of
concurrent agents cannot mix. The trial's outcome is taken from its live run when the objective
returns: its summary, and the values of the sweep's metric that the objective logged.

:func:`run_parallel_agents` runs N agents as concurrent Flyte child tasks. Online, every child
runs ``wandb.agent`` on the same server sweep. With the local controller the parent owns the
controller: it hands each child its trials as input and takes their outcomes back as output, in
rounds (one trial per agent per round for bayes, so each round learns from the last), so no state
is shared between processes and a grid configuration is never handed out twice. When the children
run in the parent's process (Flyte's local mode runs child tasks on threads), each agent runs its
trials in a worker process of its own (started with ``spawn``, one W&B client each), so
CPU-bound objectives run in parallel; the objective is imported there by name, so it must be a
module-level function of an importable module.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import multiprocessing
import pickle
import sys
import threading
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb.ext import effective_mode, live_run_ids, read_wandb_config

from ._context import SweepRef
from ._controller import LocalSweep, Trial, lookup, new_id, trial_tags
from ._validate import check_agent_count

logger = logging.getLogger(__name__)

# wandb.agent keeps its trial assignment in process-wide environment variables and tears the
# client down between trials: two in one process at once would mix their trials.
_wandb_agent_lock = threading.Lock()

DEFAULT_MAX_CONSECUTIVE_FAILURES = 5


class SweepTrialsFailed(RuntimeError):
    """Every trial an agent ran failed (the first error is attached)."""


def _current_sweep_or_none() -> SweepRef | None:
    from ._decorator import current_sweep

    return current_sweep()


def _current_ref(sweep_id: str | None) -> SweepRef:
    ref = _current_sweep_or_none()
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


# -- one trial -----------------------------------------------------------------------------------


TRACEBACK_KEY = "traceback"
"""Summary key of a failed local trial's run: the objective's full traceback."""


def _format_error(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def _json_safe(value: Any) -> Any:
    """``value`` as JSON data (W&B objects in a summary become their text)."""
    return json.loads(json.dumps(value, default=str))


def _logged_value(data: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """The value of the metric ``name`` in a ``log`` call's data (``a.b`` may be nested)."""
    if name in data:
        return True, data[name]
    cur: Any = data
    for part in name.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


@contextmanager
def _metric_rows(run: Any, metric: str | None, rows: list[dict[str, Any]]) -> Iterator[None]:
    """Within the block, every ``run.log`` (``wandb.log`` inside the trial is ``run.log``) that
    logs ``metric`` adds ``{metric: value}`` to ``rows``: the trial's history of its metric, as
    the live run received it. The run's own ``log`` is put back after the block."""
    if metric is None:
        yield
        return
    own = vars(run)
    had, before = "log" in own, own.get("log")
    client_log = run.log

    @functools.wraps(client_log)
    def log(data: Any, *args: Any, **kwargs: Any) -> Any:
        result = client_log(data, *args, **kwargs)  # first: a refused call records nothing
        if isinstance(data, Mapping):
            found, value = _logged_value(data, metric)
            if found:
                rows.append({metric: value})
        return result

    run.log = log
    try:
        yield
    finally:
        if had:
            own["log"] = before
        else:
            own.pop("log", None)


def run_trial(
    function: Callable[[], Any],
    *,
    sweep_id: str,
    run_id: str,
    params: dict[str, Any],
    project: str | None = None,
    entity: str | None = None,
    metric: str | None = None,
) -> dict[str, Any]:
    """Run one trial of a local sweep and take its outcome from its live W&B run.

    The trial's run (id ``run_id``, config ``params``, grouped and tagged with the sweep id) is
    started here, around the objective: an objective with ``@wandb_init`` joins it, and one that
    uses ``wandb.init()`` / ``wandb.log`` / ``wandb.config`` gets it too. When the objective
    raises, its full traceback is written into the run's summary (``traceback``) before the
    run is finished as failed.

    Returns ``{"run_id", "state", "summary", "history", "error"}`` (JSON data): ``summary`` is the
    run's summary when the objective ended; ``history`` holds one ``{metric: value}`` row per
    ``log`` call that logged ``metric``; ``state`` is ``"finished"`` when the objective returned
    and ``"failed"`` otherwise; ``error`` is the full traceback of a failed trial.
    """
    seen: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []

    def trial() -> None:
        run = get_wandb_run()
        if run is None:  # the plan leaves this process silent: nothing to record into
            function()
            return
        seen["run"] = run.id
        try:
            # the objective's own @wandb_init joins this run, whatever the context asks for
            with _metric_rows(run, metric, rows), wandb_config(run_mode="auto"):
                function()
        except Exception as exc:
            seen["error"] = run.summary[TRACEBACK_KEY] = _format_error(exc)
            raise
        finally:
            seen["summary"] = _json_safe(dict(run.summary))

    start = wandb_init(
        run_mode="new",
        id=run_id,
        config=params,
        group=sweep_id,
        tags=trial_tags(sweep_id),
        project=project,
        entity=entity,
    )(trial)
    error: str | None = None
    try:
        start()
    except Exception as exc:
        # the objective's traceback as the run recorded it (else: the trial's own failure)
        error = seen.get("error") or _format_error(exc)
        logger.warning("sweep %s: trial %s failed:\n%s", sweep_id, run_id, error)
    if "run" not in seen and error is None:
        error = (
            f"no W&B run was started for trial {run_id!r}: this process does not log to W&B "
            "(a non-zero rank of a distributed job?)"
        )
    return {
        "run_id": run_id,
        "state": "finished" if error is None else "failed",
        "summary": seen.get("summary", {}),
        "history": _json_safe(rows),
        "error": error,
    }


def _report(sweep: LocalSweep, outcome: dict[str, Any]) -> Trial:
    return sweep.report(
        outcome["run_id"],
        state=outcome["state"],
        summary=outcome.get("summary"),
        history=outcome.get("history"),
        error=outcome.get("error"),
    )


def _run_local(
    sweep: LocalSweep,
    function: Callable[[], Any],
    count: int | None,
    *,
    max_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
) -> dict[str, Any]:
    if count is None and sweep.method != "grid" and sweep.run_cap is None:
        raise ValueError(
            f"a {sweep.method} sweep never runs out of trials: give count= (or run_cap in the "
            "sweep configuration)"
        )
    done = len(sweep.claim_restored(count))  # finished by an earlier attempt of the task
    failures = 0
    first_error: str | None = None
    while count is None or done < count:
        trials = sweep.propose(1)
        if not trials:
            break
        trial = trials[0]
        sweep.mark_running(trial.run_id)
        outcome = run_trial(
            function,
            sweep_id=sweep.sweep_id,
            run_id=trial.run_id,
            params=trial.params,
            project=sweep.project,
            entity=sweep.entity,
            metric=sweep.metric_name,
        )
        result = _report(sweep, outcome)
        done += 1
        if result.state == "finished":
            failures = 0
        else:
            failures += 1
            first_error = first_error or result.error
            if failures >= max_failures:
                raise SweepTrialsFailed(
                    f"sweep {sweep.sweep_id}: {failures} trials in a row failed; first error: "
                    f"{first_error}"
                )
    return _summarize(sweep)


def _summarize(sweep: LocalSweep) -> dict[str, Any]:
    results = sweep.results()
    best = results["best"]
    if best is not None:
        logger.info(
            "sweep %s: best trial %s (%s=%s) with %s",
            sweep.sweep_id,
            best["run_id"],
            sweep.metric_name,
            best["metric"],
            best["params"],
        )
    trials = results["trials"]
    if trials and all(t["state"] != "finished" for t in trials):
        raise SweepTrialsFailed(
            f"sweep {sweep.sweep_id}: all {len(trials)} trials failed; first error: "
            f"{trials[0]['error']}"
        )
    return results


def _check_no_live_run() -> None:
    """Refuse ``wandb.agent`` while this process has a ``@wandb_init`` run open.

    ``wandb.agent`` tears the wandb client down before each trial, which ends every other run of
    the process (an enclosing ``@wandb_init`` task's run, or a parent task's run when Flyte runs
    child tasks in the same process, as it does locally).
    """
    open_ids = list(live_run_ids())
    if open_ids:
        raise RuntimeError(
            f"cannot run wandb.agent while the W&B run(s) {open_ids} of this process are open: "
            "wandb.agent restarts the wandb client between trials, which would end them. Do not "
            "put @wandb_init on the task that runs the agent (or its local parent); decorate the "
            "objective instead, or use the local controller (local_controller=True)"
        )


# -- the server's wandb.agent ---------------------------------------------------------------------


def client_host(host: str | None) -> AbstractContextManager[None]:
    """Point ``wandb.sweep`` / ``wandb.agent`` at the server ``host`` names for the block.

    The server is the plugin resolver's (``host`` may name the web app or the API); the client
    reads it from its environment only, which :func:`flyteplugins.wandb.ext.client_server` sets
    for the block and restores after it.
    """
    from flyteplugins.wandb.ext import client_server, server_url

    return client_server(server_url({"host": host}) if host else None)


def _server_agent(
    sweep_id: str,
    function: Callable[[], Any],
    count: int | None,
    project: str | None,
    entity: str | None,
    host: str | None,
    **options: Any,
) -> None:
    """The client's own ``wandb.agent`` on a server sweep, one at a time in this process."""
    with _wandb_agent_lock, client_host(host):
        _check_no_live_run()
        agent = _client_agent()
        agent(sweep_id, function=function, count=count, project=project, entity=entity, **options)


# -- wandb.agent on a local sweep ------------------------------------------------------------------

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
    """``wandb.agent`` while a ``@wandb_sweep`` task runs in this process (see
    :func:`local_wandb_agent`).

    The id of a sweep this process's local controller runs: its trials, here (``run_agent``).
    The id of a local sweep controlled elsewhere, or any other id while W&B is offline: an
    error at once, naming ``run_agent``. The task's server sweep: the client's ``wandb.agent``
    on the server the sweep's settings name. Anything else: the client's own ``wandb.agent``.
    """
    name = str(sweep_id).rstrip("/").rsplit("/", 1)[-1] if sweep_id else ""
    local = lookup(name) if name else None
    if local is not None:
        if function is None:
            raise _agent_error(sweep_id, "a local sweep runs a function, pass function=")
        _run_local(
            local,
            function,
            count,
            max_failures=max_consecutive_failed_runs or DEFAULT_MAX_CONSECUTIVE_FAILURES,
        )
        return None
    ref = _current_sweep_or_none()
    if ref is not None and ref.local and ref.id == name:
        raise _agent_error(sweep_id, "its local controller runs in another process")
    options: dict[str, Any] = {
        "forward_signals": forward_signals,
        "term_timeout": term_timeout,
        "max_consecutive_failed_runs": max_consecutive_failed_runs,
    }
    if ref is not None and ref.id == name:
        # the task's server sweep: on the server its settings name (host= of wandb_config)
        _server_agent(
            sweep_id,
            function,  # type: ignore[arg-type]
            count,
            project or ref.project,
            entity or ref.entity,
            ref.host,
            **options,
        )
        return None
    try:
        mode = read_wandb_config().get("mode")
    except ValueError:
        mode = None
    if effective_mode(mode) in ("offline", "disabled"):
        raise _agent_error(
            sweep_id, "W&B is offline and no local controller of this process runs that sweep"
        )
    _client_agent()(
        sweep_id, function=function, entity=entity, project=project, count=count, **options
    )
    return None


@contextmanager
def local_wandb_agent() -> Iterator[None]:
    """Within the block, ``wandb.agent`` runs local sweeps on their controller (see
    :func:`_wandb_agent`); afterwards it is the client's own again.

    Entered by a ``@wandb_sweep`` call whose sweep is local, or lives on a server that only its
    settings name (``wandb_config(host=...)``, not the environment), for the length of the call.
    Concurrent calls share one replacement; the last one to end puts the client's function back
    (unless something else replaced ``wandb.agent`` meanwhile, which is then left alone).
    """
    import functools

    import wandb

    global _patch_users, _client_agent_fn
    with _patch_lock:
        if _patch_users == 0:
            _client_agent_fn = wandb.__dict__["agent"]

            @functools.wraps(_client_agent_fn)
            def agent(*args: Any, **kwargs: Any) -> None:
                return _wandb_agent(*args, **kwargs)

            wandb.__dict__["agent"] = agent
        _patch_users += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                ours = wandb.__dict__.get("agent")
                if getattr(ours, "__wrapped__", None) is _client_agent_fn:
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
    it with ``wandb.Api().sweep(...)``). Inside a ``@wandb_sweep`` task with a local sweep,
    ``wandb.agent(get_wandb_sweep_id(), function=..., count=...)`` does the same.
    """
    if function is None or not callable(function):
        raise TypeError(f"function must be the callable objective, got {function!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive int or None, got {count!r}")
    ref = _current_ref(sweep_id)
    local = lookup(ref.id)
    if local is not None:
        return _run_local(local, function, count)
    if ref.local:
        raise RuntimeError(
            f"sweep {ref.id!r} is run by a local controller in another process; run its trials "
            "with run_parallel_agents() from the @wandb_sweep task that owns it"
        )
    _server_agent(ref.id, function, count, project or ref.project, entity or ref.entity, ref.host)
    return None


# -- local agents in worker processes ------------------------------------------------------------


def check_importable(function: Callable[[], Any]) -> None:
    """Refuse an objective that a worker process could not import, naming it.

    A worker process gets the objective by its module and name (``pickle`` by reference), so it
    must be a module-level function (or another object ``pickle`` can send) of a module the
    worker can import: not a lambda, a function defined inside another function, or a function
    of an interactive session or ``python -c``.
    """
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    why = None
    if "<lambda>" in name:
        why = "it is a lambda"
    elif "<locals>" in name:
        why = "it is defined inside a function"
    elif module == "__main__" and not getattr(sys.modules.get("__main__"), "__file__", None):
        why = "it is defined in an interactive session or `python -c`, which has no file to import"
    else:
        try:
            pickle.dumps(function)
        except Exception as exc:
            why = f"pickle cannot send it by reference ({exc})"
    if why is not None:
        raise TypeError(
            f"the objective {module}.{name} cannot be imported by the worker processes that run "
            f"local parallel agents: {why}. Define it as a module-level function of an "
            "importable module (in a script, start the Flyte run under "
            '`if __name__ == "__main__":`)'
        )


def _trials_in_worker(
    task_context: Any, function: Callable[[], Any], spec: dict[str, Any]
) -> list[dict[str, Any]]:
    """In a worker process: run the trials of ``spec`` in the agent's Flyte task context."""
    if task_context is None:
        return _run_trials(function, spec)
    from flyte._context import internal_ctx

    with internal_ctx().replace_task_context(task_context):
        return _run_trials(function, spec)


def _run_trials(function: Callable[[], Any], spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        run_trial(
            function,
            sweep_id=spec["sweep_id"],
            run_id=t["run_id"],
            params=t["params"],
            project=spec.get("project"),
            entity=spec.get("entity"),
            metric=spec.get("metric"),
        )
        for t in spec["trials"]
    ]


class AgentProcesses:
    """One worker process per local agent, for as long as a parallel sweep runs.

    Each agent (``slot``) runs its trials, one after another, in a process of its own (started
    with ``spawn`` when the agent gets its first trials, so it has its own W&B client) and keeps
    it for every round. Registered by a token that travels in the agents' work descriptions: an
    agent task running in this process finds its worker; one running elsewhere (a cluster pod)
    does not, and runs its trials itself.
    """

    def __init__(self, agents: int) -> None:
        self.token = new_id(16)
        self._slots: list[ProcessPoolExecutor | None] = [None] * agents
        self._lock = threading.Lock()

    def __enter__(self) -> AgentProcesses:
        with _processes_lock:
            _processes[self.token] = self
        return self

    def __exit__(self, *exc: object) -> None:
        with _processes_lock:
            _processes.pop(self.token, None)
        with self._lock:
            slots, self._slots = self._slots, [None] * len(self._slots)
        for executor in slots:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

    def _executor(self, slot: int) -> ProcessPoolExecutor:
        with self._lock:
            executor = self._slots[slot]
            if executor is None:
                context = multiprocessing.get_context("spawn")
                executor = self._slots[slot] = ProcessPoolExecutor(1, mp_context=context)
            return executor

    def run(
        self, slot: int, function: Callable[[], Any], spec: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Run the trials of ``spec`` in the worker of agent ``slot``; their outcomes."""
        import flyte

        check_importable(function)
        task_context = flyte.ctx() or None
        executor = self._executor(slot)
        try:
            return executor.submit(_trials_in_worker, task_context, function, spec).result()
        except BrokenProcessPool as exc:
            with self._lock:  # the next round of this agent starts a fresh worker
                if self._slots[slot] is executor:
                    self._slots[slot] = None
            raise RuntimeError(
                f"the worker process of sweep agent {slot} ended while running trials "
                f"{[t['run_id'] for t in spec['trials']]}"
            ) from exc


_processes: dict[str, AgentProcesses] = {}
_processes_lock = threading.Lock()


# -- agents as Flyte child tasks -----------------------------------------------------------------


def run_agent_work(work: str, function: Callable[[], Any]) -> str:
    """The body of an agent child task: run the trials (or the agent) that ``work`` describes.

    ``work`` is the JSON text :func:`run_parallel_agents` hands each child; the JSON text returned
    carries the outcome of every trial back to the parent. Define the agent task and the
    objective once, at module level, so a cluster (and, locally, the agent's worker process)
    can import them::

        @env.task
        def sweep_agent(work: str) -> str:
            return run_agent_work(work, objective)
    """
    spec = json.loads(work)
    if spec.get("kind") == "wandb":
        _server_agent(
            spec["sweep_id"],
            function,
            spec.get("count"),
            spec.get("project"),
            spec.get("entity"),
            spec.get("host"),
        )
        return json.dumps({"kind": "wandb", "outcomes": []})
    if spec.get("kind") != "local":
        raise ValueError(f"not a sweep agent's work description: {work[:200]!r}")
    with _processes_lock:
        processes = _processes.get(spec.get("processes") or "")
    if processes is not None:
        # the parent runs in this process: run the trials in this agent's worker process
        outcomes = processes.run(int(spec.get("slot", 0)), function, spec)
    else:
        outcomes = _run_trials(function, spec)
    return json.dumps({"kind": "local", "outcomes": outcomes}, default=str)


def _split(total: int | None, agents: int) -> list[int | None]:
    if total is None:
        return [None] * agents
    base, extra = divmod(total, agents)
    return [base + (1 if i < extra else 0) for i in range(agents)]


def _local_rounds(sweep: LocalSweep, agents: int, count: int | None) -> list[list[Trial]] | None:
    """The next round: each agent's list of trials (``None`` when nothing is left)."""
    if sweep.method == "bayes":
        per_agent = 1
    else:
        # grid and random do not learn: hand out everything at once, spread evenly
        left = count if count is not None else (sweep.run_cap or 10**9)
        per_agent = max(1, -(-left // agents))
    want = agents * per_agent
    if count is not None:
        want = min(want, count)
    trials = sweep.propose(want)
    if not trials:
        return None
    buckets: list[list[Trial]] = [[] for _ in range(agents)]
    for i, t in enumerate(trials):
        buckets[i % agents].append(t)
        sweep.mark_running(t.run_id)
    return [b for b in buckets if b]


def _work(
    sweep: LocalSweep,
    trials: Sequence[Trial],
    processes: AgentProcesses | None = None,
    slot: int = 0,
) -> str:
    return json.dumps(
        {
            "kind": "local",
            "sweep_id": sweep.sweep_id,
            "project": sweep.project,
            "entity": sweep.entity,
            "metric": sweep.metric_name,
            "trials": [{"run_id": t.run_id, "params": t.params} for t in trials],
            "processes": processes.token if processes is not None else None,
            "slot": slot,
        }
    )


def _absorb(sweep: LocalSweep, outputs: Sequence[Any], works: Sequence[str]) -> None:
    """Take a round's outcomes back; when every agent task of the round failed itself (not its
    trials), the agents cannot run trials at all: stop with the first agent's error."""
    failed = [out for out in outputs if isinstance(out, BaseException)]
    for out, work in zip(outputs, works, strict=True):
        if isinstance(out, BaseException):
            # the child task itself failed: its trials failed with it
            for t in json.loads(work)["trials"]:
                sweep.report(t["run_id"], state="failed", error=f"agent task failed: {out}")
            continue
        for outcome in json.loads(out)["outcomes"]:
            _report(sweep, outcome)
    if failed and len(failed) == len(outputs):
        raise SweepTrialsFailed(
            f"sweep {sweep.sweep_id}: every agent task failed; first error: {failed[0]}"
        ) from failed[0]


def _drive(
    local: LocalSweep, agents: int, count: int | None, processes: AgentProcesses | None = None
) -> Generator[list[str], list[Any], dict[str, Any]]:
    """The parent's side of local parallel agents.

    Yields each round's work descriptions, takes the children's outputs back (``send``), and
    returns the sweep's results when no trial is left. Trials an earlier attempt of the task
    finished count as run.
    """
    left = count
    claimed = local.claim_restored(left)
    if left is not None:
        left -= len(claimed)
    while left is None or left > 0:
        rounds = _local_rounds(local, agents, left)
        if rounds is None:
            break
        works = [_work(local, trials, processes, slot) for slot, trials in enumerate(rounds)]
        outputs = yield works
        _absorb(local, outputs, works)
        if left is not None:
            left -= sum(len(r) for r in rounds)
    return _summarize(local)


def _check_parallel(agents: int, count: int | None, sweep: LocalSweep | None) -> None:
    check_agent_count(agents)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive int or None, got {count!r}")
    if sweep is not None and count is None and sweep.method != "grid" and sweep.run_cap is None:
        raise ValueError(
            f"a {sweep.method} sweep never runs out of trials: give count= (or run_cap in the "
            "sweep configuration)"
        )


def _wandb_works(ref: SweepRef, agents: int, count: int | None) -> list[str]:
    return [
        json.dumps(
            {
                "kind": "wandb",
                "sweep_id": ref.id,
                "project": ref.project,
                "entity": ref.entity,
                "host": ref.host,
                "count": n,
            }
        )
        for n in _split(count, agents)
        if n != 0
    ]


async def run_parallel_agents(
    agent_task: Any,
    agents: int,
    count: int | None = None,
    *,
    sweep_id: str | None = None,
) -> dict[str, Any] | None:
    """Run ``agents`` sweep agents as concurrent Flyte child tasks (call from an async task).

    ``agent_task`` is a Flyte task ``(work: str) -> str`` whose body is
    ``run_agent_work(work, objective)``. At most 20 agents (W&B's limit): more is refused before
    any starts. ``count`` is the total number of trials across agents (required for random and
    bayes sweeps). Online every child runs ``wandb.agent`` on the sweep (returns ``None``); with
    the local controller the parent proposes trials in rounds and returns the sweep's results.
    Children that run in this process (Flyte's local mode) run their trials in one worker
    process per agent, so the objective must be a module-level function of an importable
    module.
    """
    ref = _current_ref(sweep_id)
    local = lookup(ref.id)
    _check_parallel(agents, count, local)
    if local is None:
        if ref.local:
            raise RuntimeError(f"sweep {ref.id!r} is controlled by another process")
        works = _wandb_works(ref, agents, count)
        await asyncio.gather(*(agent_task.aio(w) for w in works))
        return None
    with AgentProcesses(agents) as processes:
        rounds = _drive(local, agents, count, processes)
        try:
            works = next(rounds)
            while True:
                outputs = await asyncio.gather(
                    *(agent_task.aio(w) for w in works), return_exceptions=True
                )
                works = rounds.send(list(outputs))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def run_parallel_agents_sync(
    agent_task: Any,
    agents: int,
    count: int | None = None,
    *,
    sweep_id: str | None = None,
) -> dict[str, Any] | None:
    """:func:`run_parallel_agents` for a synchronous task (child tasks started from threads)."""
    ref = _current_ref(sweep_id)
    local = lookup(ref.id)
    _check_parallel(agents, count, local)

    def launch(works: list[str]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=len(works)) as pool:
            futures = [pool.submit(contextvars.copy_context().run, agent_task, w) for w in works]
            out: list[Any] = []
            for f in futures:
                try:
                    out.append(f.result())
                except Exception as exc:
                    out.append(exc)
            return out

    if local is None:
        if ref.local:
            raise RuntimeError(f"sweep {ref.id!r} is controlled by another process")
        for out in launch(_wandb_works(ref, agents, count)):
            if isinstance(out, BaseException):
                raise out
        return None
    with AgentProcesses(agents) as processes:
        rounds = _drive(local, agents, count, processes)
        try:
            works = next(rounds)
            while True:
                works = rounds.send(launch(works))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
