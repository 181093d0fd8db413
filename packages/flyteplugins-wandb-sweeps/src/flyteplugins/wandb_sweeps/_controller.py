"""The local sweep controller: W&B's open-source ``sweeps`` engine, with no server. A sweep created
by a task has an id derived from the Flyte run and action and keeps its finished trials in a JSON
file in the run's folder, so a retry of the task resumes it."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import string
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from flyteplugins.wandb.ext import action_id_base

from ._state import local_sweeps, local_sweeps_lock
from ._validate import validate_sweep_config

TrialState = Literal["pending", "running", "finished", "failed"]
logger = logging.getLogger(__name__)
STATE_FORMAT = 1
MAX_TAG_LENGTH = 64  # the longest tag W&B accepts (a trial is tagged with its sweep's id)


def new_id(length: int = 8) -> str:
    """A random id in W&B's style (lowercase letters and digits)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(length))


def local_sweep_id(run_name: str, action_name: str) -> str:
    """The id of the local sweep a ``@wandb_sweep`` task creates in a Flyte action: the same on
    every attempt, known when links are rendered, short enough to tag trials (8 hex digits of the
    run name's SHA-256; ``{{.actionName}}`` kept verbatim)."""
    return action_id_base(hashlib.sha256(run_name.encode()).hexdigest()[:8], action_name)


def trial_tags(sweep_id: str) -> list[str]:
    """The tags of a trial's run: its sweep's id, when W&B accepts it as a tag."""
    return [sweep_id] if len(sweep_id) <= MAX_TAG_LENGTH else []


def _engine() -> Any:
    try:
        with warnings.catch_warnings():  # sweeps 0.2.0's pydantic-1 config warns under pydantic 2
            warnings.filterwarnings("ignore", message="Valid config keys have changed in V2")
            warnings.filterwarnings("ignore", message="Support for class-based `config`")
            import sweeps
    except ImportError as exc:
        raise ImportError(
            "sweeps without a W&B server (offline, or local_controller=True) are run by a local "
            "controller on W&B's open-source sweep engine, which is not installed: pip install "
            '"flyteplugins-wandb-sweeps[local]"; then run_agent(function=..., count=...) or '
            "wandb.agent(get_wandb_sweep_id(), ...) in the @wandb_sweep task runs the trials"
        ) from exc
    return sweeps


def parameter_paths(
    parameters: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """The path of every leaf parameter (nested groups expanded), in the engine's sorted order."""
    out: list[tuple[str, ...]] = []
    for name in sorted(parameters):
        spec = parameters[name]
        if isinstance(spec, Mapping) and "parameters" in spec:
            out += parameter_paths(spec["parameters"], (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def find_path(values: Any, path: Sequence[str]) -> tuple[bool, Any]:
    """Whether ``values`` holds the nested ``path``, and the value there."""
    for part in path:
        if not isinstance(values, Mapping) or part not in values:
            return False, None
        values = values[part]
    return True, values


def canonical(params: Mapping[str, Any]) -> str:
    """A stable text form of a trial's parameters (to compare configurations)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=repr)


@dataclass
class Trial:
    """One proposed configuration and, once run, what came of it."""

    run_id: str
    params: dict[str, Any]
    index: int
    state: TrialState = "pending"
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metric: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("summary", "history")}


def metric_value(
    name: str, goal: str, summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]]
) -> float | None:
    """The trial's metric as W&B's engine scores it: the best of its summary and history values."""
    found, value = (True, summary[name]) if name in summary else find_path(summary, name.split("."))
    candidates = [row[name] for row in history if name in row] + ([value] if found else [])
    values = [
        float(v)
        for v in candidates
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
    return (max if goal == "maximize" else min)(values) if values else None


class LocalSweep:
    """A sweep controlled in this process; thread-safe. ``propose(n)`` hands out up to ``n`` new
    trials (fewer when a grid is exhausted, the run cap is reached or the metric's target was
    hit); ``report`` takes each trial's outcome back."""

    def __init__(
        self,
        sweep_id: str,
        config: Mapping[str, Any],
        *,
        project: str | None = None,
        entity: str | None = None,
        state: str | None = None,
    ) -> None:
        self.config = validate_sweep_config(config)
        self.sweep_id, self.project, self.entity, self.state = sweep_id, project, entity, state
        self.method: str = self.config["method"]
        metric = self.config.get("metric") or {}
        self.metric_name: str | None = metric.get("name")
        self.goal: str = metric.get("goal", "minimize")
        self.target: float | None = metric.get("target")
        self.run_cap: int | None = self.config.get("run_cap")
        self._paths = parameter_paths(self.config["parameters"])
        self._trials: dict[str, Trial] = {}
        self._seen: set[str] = set()  # grid points proposed
        self._exhausted = False
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # one writer at a time, the newest state last
        self._restored: list[Trial] = []  # finished by an earlier attempt, not yet claimed
        self._priors: set[str] = set()  # prior_runs: not trials of this sweep, not saved
        self._engine_config = {k: self.config[k] for k in ("method", "parameters")}
        if metric:
            self._engine_config["metric"] = {"impute": "worst", **metric}
        _engine()  # fail now, not at the first trial, when the engine is missing
        if state is not None:
            self._restore(state)

    @property
    def trials(self) -> list[Trial]:
        with self._lock:
            return list(self._trials.values())

    @property
    def exhausted(self) -> bool:
        """No trial can be proposed any more (grid done, run cap, or target reached)."""
        with self._lock:
            return self._done_locked()

    def _done_locked(self) -> bool:
        if self._exhausted or (self.run_cap is not None and len(self._trials) >= self.run_cap):
            return True
        sign = -1 if self.goal == "minimize" else 1
        return self.target is not None and any(
            t.metric is not None and sign * (t.metric - self.target) >= 0
            for t in self._trials.values()
        )

    def _engine_runs(self, sweeps: Any) -> list[Any]:
        from sweeps.params import HyperParameterSet

        runs = []
        for t in self._trials.values():
            config = {}
            for path in self._paths:
                found, value = find_path(t.params, path)
                if found:
                    config[HyperParameterSet.NESTING_DELIMITER.join(path)] = {"value": value}
            summary, history = dict(t.summary), list(t.history)
            if self.metric_name is not None and t.metric is not None:
                summary, history = {self.metric_name: t.metric}, []  # the value we scored
            # the engine's pydantic model accepts only the aliases of its fields
            run = {"summaryMetrics": summary, "sampledHistory": history}
            runs.append(sweeps.SweepRun(name=t.run_id, state=t.state, config=config, **run))
        return runs

    def propose(self, n: int = 1) -> list[Trial]:
        """Up to ``n`` new trials, registered as pending; ``[]`` when the sweep is done."""
        sweeps = _engine()
        out: list[Trial] = []
        with self._lock:
            while len(out) < n and not self._done_locked():
                want = n - len(out) if self.method != "bayes" else 1  # bayes: one at a time
                if self.run_cap is not None:
                    want = min(want, self.run_cap - len(self._trials))
                with warnings.catch_warnings():  # scikit-learn's kernel bounds on tiny samples
                    warnings.filterwarnings("ignore", module=r"sklearn\..*")
                    proposals = sweeps.next_runs(
                        self._engine_config, self._engine_runs(sweeps), n=want
                    )
                added = 0
                for proposal in proposals:
                    if proposal is None:
                        self._exhausted = True
                        break
                    values = {k: v["value"] for k, v in proposal.config.items()}
                    params = json.loads(json.dumps(values, default=lambda v: v.tolist()))  # numpy
                    if self.method == "grid" and canonical(params) in self._seen:
                        continue
                    self._seen.add(canonical(params))
                    trial = Trial(run_id=new_id(), params=params, index=len(self._trials))
                    self._trials[trial.run_id] = trial
                    out.append(trial)
                    added += 1
                self._exhausted |= added == 0 and self.method == "grid"  # the grid is done
        return out

    def mark_running(self, run_id: str) -> None:
        with self._lock:
            self._trials[run_id].state = "running"

    def report(
        self,
        run_id: str,
        *,
        state: TrialState,
        summary: Mapping[str, Any] | None = None,
        history: Sequence[Mapping[str, Any]] | None = None,
        metric: float | None = None,
        error: str | None = None,
    ) -> Trial:
        """Record a trial's outcome; the metric is scored from summary and history if not given."""
        with self._lock:
            t = self._trials[run_id]
            t.state, t.summary, t.error = state, dict(summary or {}), error
            if self.metric_name is not None:
                name = self.metric_name
                t.history = [{name: row[name]} for row in history or [] if name in row]
                if metric is None:
                    metric = metric_value(name, self.goal, t.summary, t.history)
            t.metric = metric
        self._save()
        return t

    def add_prior(
        self,
        run_id: str,
        params: Mapping[str, Any],
        summary: Mapping[str, Any],
        history: Sequence[Mapping[str, Any]],
        finished: bool,
    ) -> Trial:
        """Seed the sweep with a run that already happened (``prior_runs``)."""
        with self._lock:
            trial = Trial(run_id=run_id, params=dict(params), index=len(self._trials))
            self._trials[run_id] = trial
            self._seen.add(canonical(trial.params))
            self._priors.add(run_id)
        state: TrialState = "finished" if finished else "failed"
        return self.report(run_id, state=state, summary=summary, history=history)

    def _save(self) -> None:
        """Write the finished trials to the state file; a failure is logged (a retry would run them
        again)."""
        if self.state is None:
            return
        from flyte.storage import get_underlying_filesystem

        keep = ("run_id", "params", "summary", "history", "metric")
        try:
            with self._save_lock:
                with self._lock:
                    trials = [
                        {k: getattr(t, k) for k in keep}
                        for t in self._trials.values()
                        if t.state == "finished" and t.run_id not in self._priors
                    ]
                data = {"format": STATE_FORMAT, "sweep_id": self.sweep_id, "trials": trials}
                fs = get_underlying_filesystem(path=self.state)
                fs.makedirs(self.state.rsplit("/", 1)[0], exist_ok=True)
                with fs.open(self.state, "w") as fh:
                    json.dump({**data, "config": canonical(self._engine_config)}, fh, default=repr)
        except Exception as exc:
            logger.warning(
                "sweep %s: could not save its state to %s: %r", self.sweep_id, self.state, exc
            )

    def _restore(self, path: str) -> None:
        from flyte.storage import get_underlying_filesystem

        try:
            with get_underlying_filesystem(path=path).open(path, "r") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} is not the state of a local sweep (format {STATE_FORMAT})")
        if [data.get("sweep_id"), data.get("config")] != [
            self.sweep_id,
            canonical(self._engine_config),
        ]:
            logger.warning(
                "sweep %s: the state at %s belongs to another sweep configuration; starting afresh",
                self.sweep_id,
                path,
            )
            return
        for saved in data.get("trials", []):
            trial = Trial(index=len(self._trials), state="finished", **saved)
            self._trials[trial.run_id] = trial
            self._seen.add(canonical(trial.params))
            self._restored.append(trial)
        logger.info("sweep %s: resumed with %d finished trials", self.sweep_id, len(self._restored))

    def claim_restored(self, limit: int | None = None) -> list[Trial]:
        """Up to ``limit`` trials an earlier attempt finished, each handed out once: an agent counts
        them as run."""
        with self._lock:
            n = len(self._restored) if limit is None else max(0, min(limit, len(self._restored)))
            claimed, self._restored = self._restored[:n], self._restored[n:]
            return claimed

    def best(self) -> Trial | None:
        """The finished trial with the best metric (``None`` without a metric or a result)."""
        scored = [t for t in self.trials if t.state == "finished" and t.metric is not None]
        pick = max if self.goal == "maximize" else min
        return pick(scored, key=lambda t: t.metric) if scored else None  # type: ignore[arg-type,return-value]

    def results(self) -> dict[str, Any]:
        """A JSON-safe report: every trial and the best one."""
        best, metric = self.best(), self.config.get("metric")
        out = {"sweep_id": self.sweep_id, "method": self.method, "metric": metric}
        return {
            **out,
            "trials": [t.as_dict() for t in self.trials],
            "best": best and best.as_dict(),
        }

    def close(self) -> None:
        """Forget the sweep: its id no longer finds it (``run_agent``, ``wandb.agent``)."""
        with local_sweeps_lock:
            if local_sweeps.get(self.sweep_id) is self:
                del local_sweeps[self.sweep_id]

    def __enter__(self) -> LocalSweep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lookup(sweep_id: str) -> LocalSweep | None:
    """The local sweep with this id, if this process controls it."""
    with local_sweeps_lock:
        found = local_sweeps.get(sweep_id)
    return found if isinstance(found, LocalSweep) else None


def create_local_sweep(
    config: Mapping[str, Any],
    *,
    project: str | None = None,
    entity: str | None = None,
    sweep_id: str | None = None,
    state: str | None = None,
) -> LocalSweep:
    """Create and register a local sweep (the offline ``wandb.sweep``); its id finds it
    (``run_agent``, ``wandb.agent``) until :meth:`LocalSweep.close` (or the end of a ``with``
    block). ``state`` (a path or URL) keeps the finished trials, from which a sweep created later
    with the same id and configuration resumes."""
    sweep = LocalSweep(sweep_id or new_id(), config, project=project, entity=entity, state=state)
    with local_sweeps_lock:
        local_sweeps[sweep.sweep_id] = sweep
    return sweep
