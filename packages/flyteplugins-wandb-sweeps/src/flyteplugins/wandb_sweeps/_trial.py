"""One trial of a local sweep, and an agent that runs a local sweep's trials one after another.

A trial is an ordinary ``@wandb_init`` run whose settings come from the task-local context (the
run id the controller chose, the parameters as config, the sweep id as group and tag), so inside
it ``wandb.log`` / ``wandb.config`` / ``get_wandb_run()`` are that trial's run and concurrent
trials cannot mix. Its outcome is read from the live run when the objective returns.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init

from ._controller import LocalSweep, Trial, trial_tags

logger = logging.getLogger(__name__)
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
TRACEBACK_KEY = "traceback"
"""Summary key of a failed local trial's run: the objective's full traceback."""


class SweepTrialsFailed(RuntimeError):
    """Every trial an agent ran failed, or too many in a row (the first error is attached)."""


def _format_error(exc: BaseException, function: Callable[[], Any]) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    script = getattr(sys.modules.get("__mp_main__"), "__file__", None)
    in_worker = multiprocessing.parent_process() is not None
    if isinstance(exc, OSError) and script and in_worker and function.__module__.endswith("main__"):
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
    """Within the block, every ``run.log`` (``wandb.log`` in the trial) that logs ``metric``
    (``a.b`` may be nested) adds ``{metric: value}`` to ``rows``; ``run.log`` is restored."""
    own = vars(run)
    had, before, client_log = "log" in own, own.get("log"), run.log

    @functools.wraps(client_log)
    def log(data: Any, *args: Any, **kwargs: Any) -> Any:
        result = client_log(data, *args, **kwargs)  # first: a refused call records nothing
        value: Any = data
        for part in (
            [metric] if isinstance(data, Mapping) and metric in data else str(metric).split(".")
        ):
            if not isinstance(value, Mapping) or part not in value:
                return result
            value = value[part]
        rows.append({str(metric): value})
        return result

    if metric is not None:
        run.log = log
    try:
        yield
    finally:
        if metric is not None and had:
            own["log"] = before
        elif metric is not None:
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
    flyte: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one trial of a local sweep and take its outcome from its live W&B run.

    The trial's run (id ``run_id``, config ``params``, grouped and tagged with the sweep id) is
    started around the objective: an objective with ``@wandb_init`` joins it, and one that uses
    ``wandb.init()`` / ``wandb.log`` / ``wandb.config`` gets it too. A failed objective's full
    traceback is written into the run's summary (``traceback``). ``flyte``: the Flyte action to
    record in the run's config where the plugin cannot see it (a worker process).

    Returns ``{"run_id", "state", "summary", "history", "error"}`` (JSON data): ``history`` holds
    one ``{metric: value}`` row per ``log`` call that logged ``metric``; ``state`` is
    ``"finished"`` or ``"failed"``; ``error`` is the full traceback of a failed trial.
    """
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
    where = {"project": project, "entity": entity, "group": sweep_id, "tags": trial_tags(sweep_id)}
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
    state = "finished" if error is None else "failed"
    history = json.loads(json.dumps(rows, default=str))
    summary = seen.get("summary", {})
    return {
        "run_id": run_id,
        "state": state,
        "summary": summary,
        "history": history,
        "error": error,
    }


def report(sweep: LocalSweep, outcome: Mapping[str, Any]) -> Trial:
    """Give the controller what :func:`run_trial` returned."""
    keys = ("state", "summary", "history", "error")
    return sweep.report(outcome["run_id"], **{k: outcome.get(k) for k in keys})


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
        where = {"project": sweep.project, "entity": sweep.entity, "metric": sweep.metric_name}
        outcome = run_trial(
            function,
            sweep_id=sweep.sweep_id,
            run_id=trials[0].run_id,
            params=trials[0].params,
            **where,
        )
        result = report(sweep, outcome)
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
