"""One trial of a local sweep, and an agent that runs a local sweep's trials one by one.

A local trial is an ordinary ``@wandb_init`` run whose settings come from the context: the run id
the controller chose, the trial's parameters as its config, the sweep id as its group and as a
tag. They travel in the task-local ``custom_context``, never in process-wide environment
variables, and inside the trial ``wandb.log`` / ``wandb.config`` / ``get_wandb_run()`` are that
trial's run, so trials of concurrent agents cannot mix. The trial's outcome is taken from its live
run when the objective returns: its summary, and the values of the sweep's metric it logged.
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
    if (
        isinstance(exc, OSError)
        and script
        and multiprocessing.parent_process() is not None
        and getattr(function, "__module__", None) in ("__main__", "__mp_main__")
    ):
        text += (
            f"\n\nThis trial ran in a worker process of a local parallel agent, which imported "
            f"your script {script} again to find the objective: the script's top-level code "
            "ran again in the worker, and code there that removes files or folders, creates "
            "them or changes directory has changed what the trial sees. Put that code, and the "
            'Flyte run, under `if __name__ == "__main__":` (see the sweeps guide).'
        )
    return text


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
    """Within the block, every ``run.log`` that logs ``metric`` adds ``{metric: value}`` to
    ``rows`` (``wandb.log`` inside the trial is ``run.log``); the run's ``log`` is restored."""
    if metric is None:
        yield
        return
    own = vars(run)
    had, before, client_log = "log" in own, own.get("log"), run.log

    @functools.wraps(client_log)
    def log(data: Any, *args: Any, **kwargs: Any) -> Any:
        result = client_log(data, *args, **kwargs)  # first: a refused call records nothing
        found, value = _logged_value(data, metric) if isinstance(data, Mapping) else (False, None)
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
    flyte: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one trial of a local sweep and take its outcome from its live W&B run.

    The trial's run (id ``run_id``, config ``params``, grouped and tagged with the sweep id) is
    started around the objective: an objective with ``@wandb_init`` joins it, and one that uses
    ``wandb.init()`` / ``wandb.log`` / ``wandb.config`` gets it too. When the objective raises,
    its full traceback is written into the run's summary (``traceback``).

    Returns ``{"run_id", "state", "summary", "history", "error"}`` (JSON data): ``history`` holds
    one ``{metric: value}`` row per ``log`` call that logged ``metric``; ``state`` is
    ``"finished"`` or ``"failed"``; ``error`` is the full traceback of a failed trial. ``flyte``:
    the Flyte action the trial runs for, recorded under ``flyte`` in the run's config where the
    plugin cannot see it (a worker process outside the task).
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
            seen["error"] = run.summary[TRACEBACK_KEY] = _format_error(exc, function)
            raise
        finally:
            seen["summary"] = json.loads(json.dumps(dict(run.summary), default=str))

    start = wandb_init(
        run_mode="new",
        id=run_id,
        config={**params, "flyte": flyte} if flyte else params,
        group=sweep_id,
        tags=trial_tags(sweep_id),
        project=project,
        entity=entity,
    )(trial)
    error: str | None = None
    try:
        start()
    except Exception as exc:
        error = seen.get("error") or _format_error(exc, function)
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
        "history": json.loads(json.dumps(rows, default=str)),
        "error": error,
    }


def report(sweep: LocalSweep, outcome: Mapping[str, Any]) -> Trial:
    """Give the controller what :func:`run_trial` returned."""
    return sweep.report(
        outcome["run_id"],
        state=outcome["state"],
        summary=outcome.get("summary"),
        history=outcome.get("history"),
        error=outcome.get("error"),
    )


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
        outcome = run_trial(
            function,
            sweep_id=sweep.sweep_id,
            run_id=trials[0].run_id,
            params=trials[0].params,
            project=sweep.project,
            entity=sweep.entity,
            metric=sweep.metric_name,
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
    best = results["best"]
    if best is not None:
        logger.info(
            "sweep %s: best trial %s with %s", sweep.sweep_id, best["run_id"], best["params"]
        )
    trials = results["trials"]
    if trials and all(t["state"] != "finished" for t in trials):
        raise SweepTrialsFailed(
            f"sweep {sweep.sweep_id}: all {len(trials)} trials failed; first error: "
            f"{trials[0]['error']}"
        )
    return results
