"""Parallel agents as concurrent Flyte child tasks, one driver for sync and async. With the local
controller the parent hands each child its trials and takes their outcomes back, in rounds (one
trial per agent for bayes); children running in the parent's process run them in ``spawn`` worker
processes, which import the objective (and a script's top-level code) again."""

from __future__ import annotations

import asyncio
import contextvars
import json
import multiprocessing
import pickle
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from flyteplugins.wandb.ext import current_custom_context, flyte_identity, override_custom_context

from ._agent import (
    SweepTrialsFailed,
    check_count,
    current_ref,
    report,
    run_trial,
    server_agent,
    summarize,
)
from ._controller import LocalSweep, lookup
from ._validate import check_agent_count

_TRIAL_KEYS = ("sweep_id", "project", "entity", "metric", "flyte")
_MAIN_HINT = 'in a script, start the Flyte run under `if __name__ == "__main__":`'


def check_importable(function: Callable[[], Any]) -> None:
    """Refuse an objective that a worker process could not import, naming it and why."""
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", repr(function))
    why = "it is a lambda" if "<lambda>" in name else None
    why = why or ("it is defined inside a function" if "<locals>" in name else None)
    if not why and module == "__main__" and not hasattr(sys.modules["__main__"], "__file__"):
        why = "it is defined in an interactive session or `python -c`, which has no file to import"
    try:
        pickle.dumps(function)
    except Exception as exc:
        why = why or f"pickle cannot send it by reference ({exc})"
    if why is not None:
        raise TypeError(
            f"the objective {module}.{name} cannot be imported by the worker processes that run "
            f"local parallel agents: {why}. Define it as a module-level function of an "
            f"importable module ({_MAIN_HINT})"
        )


def _run_trials(
    function: Callable[[], Any], spec: Mapping[str, Any], context: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Run the trials of ``spec`` (in a worker process: with the agent task's ``context``)."""
    where: dict[str, Any] = {k: spec.get(k) for k in _TRIAL_KEYS}
    with override_custom_context(context or {}):
        return [
            run_trial(function, run_id=t["run_id"], params=t["params"], **where)
            for t in spec["trials"]
        ]


class _Workers:
    """The worker processes (one per agent running at a time) of a parallel run of a sweep."""

    def __init__(self, sweep_id: str, agents: int) -> None:
        self.sweep_id, self.agents, self.lock = sweep_id, agents, threading.Lock()
        self.pool: ProcessPoolExecutor | None = None
        with _workers_lock:
            _workers[sweep_id] = self

    def close(self) -> None:
        with _workers_lock:
            if _workers.get(self.sweep_id) is self:
                del _workers[self.sweep_id]
        with self.lock:
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def run(self, function: Callable[[], Any], spec: dict[str, Any]) -> Any:
        check_importable(function)
        with self.lock:
            if self.pool is None:
                spawn = multiprocessing.get_context("spawn")
                self.pool = ProcessPoolExecutor(self.agents, mp_context=spawn)
            pool = self.pool
        spec = {**spec, "flyte": flyte_identity()}
        try:
            return pool.submit(_run_trials, function, spec, current_custom_context()).result()
        except BrokenProcessPool as exc:
            with self.lock:  # the next round starts fresh workers
                self.pool = None if self.pool is pool else self.pool
            raise RuntimeError(
                f"a worker process of sweep {self.sweep_id} ended while running trials "
                f"{[t['run_id'] for t in spec['trials']]}. It imports the objective's module "
                "again, running its top-level code: code there that must run once (cleaning "
                f"folders, changing directory) belongs under the `__main__` check ({_MAIN_HINT})"
            ) from exc


_workers: dict[str, _Workers] = {}
_workers_lock = threading.Lock()


def run_agent_work(work: str, function: Callable[[], Any]) -> str:
    """The body of an agent child task: run the trials (or the agent) that ``work`` (from
    :func:`run_parallel_agents`) describes; the JSON text returned carries their outcomes back.
    Define the task and the objective at module level: ``return run_agent_work(work,
    objective)``."""
    spec = json.loads(work)
    if spec.get("kind") == "wandb":
        where = [spec.get(k) for k in ("count", "project", "entity", "host")]
        server_agent(spec["sweep_id"], function, *where)
        return json.dumps({"kind": "wandb", "outcomes": []})
    if spec.get("kind") != "local":
        raise ValueError(f"not a sweep agent's work description: {work[:200]!r}")
    with _workers_lock:  # the parent runs in this process: its worker for this agent
        workers = _workers.get(spec["sweep_id"]) if lookup(spec["sweep_id"]) else None
    outcomes = workers.run(function, spec) if workers else _run_trials(function, spec)
    return json.dumps({"kind": "local", "outcomes": outcomes}, default=str)


class _Driver:
    """The parent's side of one parallel run: each round's work descriptions (``works``) and the
    outcomes taken back, until no trial is left (``result`` then holds the sweep's results)."""

    def __init__(self, agents: int, count: int | None, sweep_id: str | None) -> None:
        ref = current_ref(sweep_id)
        check_agent_count(agents)
        self.local: LocalSweep | None = lookup(ref.id)
        check_count(self.local, count)
        self.agents, self.left = agents, count
        self.result: dict[str, Any] | None = None
        self.workers: _Workers | None = None
        if self.local is None:
            if ref.local:
                raise RuntimeError(f"sweep {ref.id!r} is controlled by another process")
            base, extra = divmod(count, agents) if count is not None else (None, 0)
            where = {"sweep_id": ref.id, "project": ref.project, "entity": ref.entity}
            self.works = [
                json.dumps({"kind": "wandb", **where, "host": ref.host, "count": n})
                for i in range(agents)
                if (n := None if base is None else base + (i < extra)) != 0
            ]
            return
        self.workers = _Workers(ref.id, agents)
        claimed = self.local.claim_restored(count)  # finished by an earlier attempt
        if self.left is not None:
            self.left -= len(claimed)
        self.works = self._round(self.local)

    def _round(self, sweep: LocalSweep) -> list[str]:
        if self.left is not None and self.left <= 0:
            return []
        per_agent = 1  # bayes learns from each round; grid and random get everything at once
        if sweep.method != "bayes":
            total = self.left if self.left is not None else (sweep.run_cap or 10**9)
            per_agent = max(1, -(-total // self.agents))
        want = self.agents * per_agent
        trials = sweep.propose(want if self.left is None else min(want, self.left))
        if self.left is not None:
            self.left -= len(trials)
        for t in trials:
            sweep.mark_running(t.run_id)
        where = {"sweep_id": sweep.sweep_id, "project": sweep.project, "entity": sweep.entity}
        spec = {"kind": "local", **where, "metric": sweep.metric_name}
        slots = [trials[i :: self.agents] for i in range(min(self.agents, len(trials)))]
        mine = [[{"run_id": t.run_id, "params": t.params} for t in slot] for slot in slots]
        return [json.dumps({**spec, "trials": batch}) for batch in mine]

    def take(self, outputs: list[Any]) -> list[str]:
        """Take a round's outputs (a result or the exception of each child); the next round."""
        failed = [out for out in outputs if isinstance(out, BaseException)]
        if self.local is None:  # wandb.agent children: one round
            self.works = []
            if failed:
                raise failed[0]
            return []
        for out, work in zip(outputs, self.works, strict=True):
            if isinstance(out, BaseException):  # the child task itself failed, and its trials
                for t in json.loads(work)["trials"]:
                    self.local.report(
                        t["run_id"], state="failed", error=f"agent task failed: {out}"
                    )
            else:
                for outcome in json.loads(out)["outcomes"]:
                    report(self.local, outcome)
        if failed and len(failed) == len(outputs):
            raise SweepTrialsFailed(
                f"sweep {self.local.sweep_id}: every agent task failed; first error: {failed[0]}"
            ) from failed[0]
        self.works = self._round(self.local)
        if not self.works:
            self.result = summarize(self.local)
        return self.works

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()


async def run_parallel_agents(
    agent_task: Any, agents: int, count: int | None = None, *, sweep_id: str | None = None
) -> dict[str, Any] | None:
    """Run ``agents`` (at most 20) sweep agents as concurrent Flyte child tasks from an async task;
    ``agent_task`` is a task ``(work: str) -> str`` returning ``run_agent_work(work, objective)``
    and ``count`` the total number of trials. Online each child runs ``wandb.agent`` (returns
    ``None``); locally the parent proposes trials in rounds and returns the sweep's results."""
    driver = _Driver(agents, count, sweep_id)
    try:
        while driver.works:
            calls = (agent_task.aio(w) for w in driver.works)
            driver.take(list(await asyncio.gather(*calls, return_exceptions=True)))
        return driver.result
    finally:
        driver.close()


def run_parallel_agents_sync(
    agent_task: Any, agents: int, count: int | None = None, *, sweep_id: str | None = None
) -> dict[str, Any] | None:
    """:func:`run_parallel_agents` for a synchronous task (child tasks started from threads)."""
    driver = _Driver(agents, count, sweep_id)
    try:
        while driver.works:
            with ThreadPoolExecutor(max_workers=len(driver.works)) as pool:
                calls = [
                    pool.submit(contextvars.copy_context().run, agent_task, w) for w in driver.works
                ]
            driver.take([f.exception() or f.result() for f in calls])
        return driver.result
    finally:
        driver.close()
