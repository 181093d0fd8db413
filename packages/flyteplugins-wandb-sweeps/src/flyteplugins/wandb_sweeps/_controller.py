"""The local sweep controller: W&B's open-source ``sweeps`` engine, with no server.

A W&B sweep normally lives on the server: it proposes each trial when an agent's heartbeat asks
for one. Offline (or when asked to), :class:`LocalSweep` plays that part in the process of the
``@wandb_sweep`` task: it asks ``sweeps.next_runs`` for trials given every trial proposed so far
(running ones included, so a grid never hands out a configuration twice and bayes accounts for
trials in flight), and takes each finished trial's metric back from its live W&B run.

A sweep created by a ``@wandb_sweep`` task has an id derived from the Flyte run and action
(:func:`local_sweep_id`) and keeps its state (the finished trials) in a small JSON file in the
run's folder (:func:`state_path`), written after every trial: a retry of the task creates the
same sweep, finds the file, and hands the finished trials back to its agents
(:meth:`LocalSweep.claim_restored`) instead of running them again.

``sweeps`` 0.2.0 declares its pydantic fields with aliases (``summaryMetrics``,
``sampledHistory``) and, under pydantic 2, accepts only the aliases; this module is the one place
that builds its ``SweepRun`` objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import string
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._validate import validate_sweep_config

TrialState = Literal["pending", "running", "finished", "failed"]

logger = logging.getLogger(__name__)

_ID_ALPHABET = string.ascii_lowercase + string.digits
STATE_FORMAT = 1
"""Version of the local sweep's state file."""


def new_id(length: int = 8) -> str:
    """A random id in W&B's style (lowercase letters and digits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


MAX_TAG_LENGTH = 64
"""Longest tag W&B accepts (trials are tagged with their sweep's id when it fits)."""


def local_sweep_id(run_name: str, action_name: str) -> str:
    """The id of the local sweep a ``@wandb_sweep`` task creates in the Flyte action
    ``action_name`` of ``run_name``: ``{run digest}-{action}``.

    The same on every attempt of the action, and computable when the task's links are rendered:
    Flyte renders them with the run's name and the action's name or its template
    (``{{.actionName}}``, kept verbatim and filled in by Flyte). Eight hex digits of the run
    name's SHA-256 stand in for the name, which keeps the id short enough to tag the trials.
    """
    from flyteplugins.wandb.ext import action_id_base

    digest = hashlib.sha256(run_name.encode("utf-8")).hexdigest()[:8]
    return action_id_base(digest, action_name)


def trial_tags(sweep_id: str) -> list[str]:
    """The tags of a trial's run: its sweep's id, when W&B accepts it as a tag."""
    return [sweep_id] if len(sweep_id) <= MAX_TAG_LENGTH else []


def state_path(run_base_dir: str, sweep_id: str) -> str:
    """Where the local sweep ``sweep_id`` of a Flyte run keeps its state: in the run's folder
    (``run_base_dir``, a local path or an object store URL), so every attempt finds it."""
    return f"{run_base_dir.rstrip('/')}/wandb-sweeps/{sweep_id}.json"


def _local_path(path: str) -> str | None:
    """``path`` as a local file name, or ``None`` for an object store URL."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if "://" in path else path


def read_state(path: str) -> dict[str, Any] | None:
    """The state saved at ``path`` (``None`` when there is none yet)."""
    local = _local_path(path)
    try:
        if local is not None:
            with open(local) as fh:
                data = json.load(fh)
        else:
            from flyte.storage import get_underlying_filesystem

            with get_underlying_filesystem(path=path).open(path, "r") as fh:
                data = json.load(fh)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not the state of a local sweep (format {STATE_FORMAT})")
    return data


def write_state(path: str, data: Mapping[str, Any]) -> None:
    """Save ``data`` at ``path`` whole (a local file is replaced atomically)."""
    text = json.dumps(data, sort_keys=True, default=repr)
    local = _local_path(path)
    if local is None:
        from flyte.storage import get_underlying_filesystem

        with get_underlying_filesystem(path=path).open(path, "w") as fh:
            fh.write(text)
        return
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    tmp = f"{local}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, local)


def _engine() -> Any:
    try:
        with warnings.catch_warnings():
            # sweeps 0.2.0 declares a pydantic-1 config key; pydantic 2 warns on import
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


def _nesting_delimiter() -> str:
    from sweeps.params import HyperParameterSet

    return str(HyperParameterSet.NESTING_DELIMITER)


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


def _lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    cur: Any = values
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _to_plain(value: Any) -> Any:
    """numpy scalars and arrays from the engine as plain Python values W&B and JSON accept."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


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
        return {
            "run_id": self.run_id,
            "params": self.params,
            "index": self.index,
            "state": self.state,
            "metric": self.metric,
            "error": self.error,
        }


def metric_value(
    name: str, goal: str, summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]]
) -> float | None:
    """The trial's metric as W&B's engine scores it: the best of its summary and history values."""
    values: list[float] = []
    candidates = [row[name] for row in history if name in row]
    found, summary_value = _lookup(summary, tuple(name.split(".")))
    if name in summary:
        candidates.append(summary[name])
    elif found:
        candidates.append(summary_value)
    for v in candidates:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            values.append(float(v))
    if not values:
        return None
    return max(values) if goal == "maximize" else min(values)


class LocalSweep:
    """A sweep controlled in this process; thread-safe (agents may run in threads).

    ``propose(n)`` hands out up to ``n`` new trials (fewer when a grid is exhausted, the run cap
    is reached or the metric's target was hit); ``report`` takes each trial's outcome back.
    """

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
        self.sweep_id = sweep_id
        self.project = project
        self.entity = entity
        self.method: str = self.config["method"]
        metric = self.config.get("metric") or {}
        self.metric_name: str | None = metric.get("name")
        self.goal: str = metric.get("goal", "minimize")
        self.target: float | None = metric.get("target")
        self.run_cap: int | None = self.config.get("run_cap")  # checked by validate_sweep_config
        self._paths = parameter_paths(self.config["parameters"])
        self._trials: list[Trial] = []
        self._seen: set[str] = set()
        self._exhausted = False
        self._lock = threading.Lock()
        self.state = state
        self._save_lock = threading.Lock()  # one writer at a time, the newest state last
        self._restored: list[Trial] = []  # finished by an earlier attempt, not yet claimed
        self._priors: set[str] = set()  # prior_runs: not trials of this sweep, not saved
        # the engine only understands the keys it documents; pass it exactly those
        self._engine_config = {
            k: v for k, v in self.config.items() if k in ("method", "metric", "parameters")
        }
        if self.method == "bayes":
            self._engine_config["metric"] = {"impute": "worst", **metric}
        _engine()  # fail now, not at the first trial, when the engine is missing
        if state is not None:
            self._restore(state)

    # -- bookkeeping ---------------------------------------------------------------------------

    @property
    def trials(self) -> list[Trial]:
        with self._lock:
            return list(self._trials)

    @property
    def exhausted(self) -> bool:
        """No trial can be proposed any more (grid done, run cap, or target reached)."""
        with self._lock:
            return self._done_locked()

    def _done_locked(self) -> bool:
        if self._exhausted:
            return True
        if self.run_cap is not None and len(self._trials) >= self.run_cap:
            return True
        if self.target is not None:
            for t in self._trials:
                if t.metric is not None and (
                    t.metric <= self.target if self.goal == "minimize" else t.metric >= self.target
                ):
                    return True
        return False

    def _flat_config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        delim = _nesting_delimiter()
        out: dict[str, Any] = {}
        for path in self._paths:
            found, value = _lookup(params, path)
            if found:
                out[delim.join(path)] = {"value": value}
        return out

    def _engine_runs(self) -> list[Any]:
        sweeps = _engine()
        runs = []
        for t in self._trials:
            state = {"pending": "pending", "running": "running"}.get(t.state, t.state)
            summary = dict(t.summary)
            history = list(t.history)
            if self.metric_name is not None and t.metric is not None:
                # the engine scores the metric from these; give it the value we scored
                summary = {self.metric_name: t.metric}
                history = []
            runs.append(
                sweeps.SweepRun(
                    name=t.run_id,
                    state=state,
                    config=self._flat_config(t.params),
                    summaryMetrics=summary,
                    sampledHistory=history,
                )
            )
        return runs

    def propose(self, n: int = 1) -> list[Trial]:
        """Up to ``n`` new trials, registered as pending; ``[]`` when the sweep is done."""
        if n < 1:
            return []
        sweeps = _engine()
        with self._lock:
            out: list[Trial] = []
            while len(out) < n and not self._done_locked():
                want = n - len(out)
                if self.run_cap is not None:
                    want = min(want, self.run_cap - len(self._trials))
                if self.method == "bayes":
                    want = 1  # each proposal sees the previous ones as in flight
                with warnings.catch_warnings():
                    # scikit-learn's Gaussian process warns about its kernel bounds on tiny
                    # samples; it is noise for the user, not a problem with their sweep
                    warnings.filterwarnings("ignore", module=r"sklearn\..*")
                    proposals = sweeps.next_runs(self._engine_config, self._engine_runs(), n=want)
                added = 0
                for proposal in proposals:
                    if proposal is None:
                        self._exhausted = True
                        break
                    params = {k: _to_plain(v["value"]) for k, v in proposal.config.items()}
                    key = canonical(params)
                    if self.method == "grid" and key in self._seen:
                        continue
                    self._seen.add(key)
                    trial = Trial(run_id=new_id(), params=params, index=len(self._trials))
                    self._trials.append(trial)
                    out.append(trial)
                    added += 1
                if added == 0 and self.method == "grid":
                    # the engine repeated itself: the grid has nothing new to give
                    self._exhausted = True
            return out

    def mark_running(self, run_id: str) -> None:
        with self._lock:
            self._get(run_id).state = "running"

    def _get(self, run_id: str) -> Trial:
        for t in self._trials:
            if t.run_id == run_id:
                return t
        raise KeyError(f"trial {run_id!r} was not proposed by sweep {self.sweep_id!r}")

    def report(
        self,
        run_id: str,
        *,
        state: TrialState,
        summary: Mapping[str, Any] | None = None,
        history: list[Mapping[str, Any]] | None = None,
        metric: float | None = None,
        error: str | None = None,
    ) -> Trial:
        """Record a trial's outcome; the metric is scored from summary and history if not given."""
        with self._lock:
            t = self._get(run_id)
            t.state = state
            t.summary = dict(summary or {})
            t.error = error
            if self.metric_name is not None:
                rows = [
                    {self.metric_name: row[self.metric_name]}
                    for row in history or []
                    if self.metric_name in row
                ]
                t.history = rows
                if metric is None:
                    metric = metric_value(self.metric_name, self.goal, t.summary, rows)
            t.metric = metric
        self._save()
        return t

    def add_prior(
        self,
        run_id: str,
        params: Mapping[str, Any],
        summary: Mapping[str, Any],
        history: list[Mapping[str, Any]],
        finished: bool,
    ) -> Trial:
        """Seed the sweep with a run that already happened (``prior_runs``)."""
        with self._lock:
            trial = Trial(run_id=run_id, params=dict(params), index=len(self._trials))
            self._trials.append(trial)
            self._seen.add(canonical(trial.params))
            self._priors.add(run_id)
        return self.report(
            run_id, state="finished" if finished else "failed", summary=summary, history=history
        )

    # -- state across attempts -------------------------------------------------------------------

    def _state_locked(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "sweep_id": self.sweep_id,
            "config": canonical(self._engine_config),
            "trials": [
                {
                    "run_id": t.run_id,
                    "params": t.params,
                    "summary": t.summary,
                    "history": t.history,
                    "metric": t.metric,
                }
                for t in self._trials
                if t.state == "finished" and t.run_id not in self._priors
            ],
        }

    def _save(self) -> None:
        """Write the finished trials to the state file (when the sweep has one).

        A failure to write is logged, not raised: the sweep goes on, and a retry of its task
        would run the unsaved trials again.
        """
        if self.state is None:
            return
        try:
            with self._save_lock:
                with self._lock:
                    data = self._state_locked()
                write_state(self.state, data)
        except Exception as exc:
            logger.warning(
                "sweep %s: could not save its state to %s (a retry would run its finished "
                "trials again): %r",
                self.sweep_id,
                self.state,
                exc,
            )

    def _restore(self, path: str) -> None:
        data = read_state(path)
        if data is None:
            return
        if data.get("sweep_id") != self.sweep_id or data.get("config") != canonical(
            self._engine_config
        ):
            logger.warning(
                "sweep %s: the state at %s belongs to another sweep configuration; starting "
                "afresh (it is overwritten after the first trial)",
                self.sweep_id,
                path,
            )
            return
        for saved in data.get("trials", []):
            trial = Trial(
                run_id=saved["run_id"],
                params=dict(saved["params"]),
                index=len(self._trials),
                state="finished",
                summary=dict(saved.get("summary") or {}),
                history=list(saved.get("history") or []),
                metric=saved.get("metric"),
            )
            self._trials.append(trial)
            self._seen.add(canonical(trial.params))
            self._restored.append(trial)
        if self._restored:
            logger.info(
                "sweep %s: resumed with %d trials finished by an earlier attempt",
                self.sweep_id,
                len(self._restored),
            )

    def claim_restored(self, limit: int | None = None) -> list[Trial]:
        """Up to ``limit`` trials an earlier attempt of this sweep finished (from its state),
        each handed out once: an agent counts them as trials it ran, instead of running them."""
        with self._lock:
            n = len(self._restored) if limit is None else max(0, min(limit, len(self._restored)))
            claimed, self._restored = self._restored[:n], self._restored[n:]
            return claimed

    def best(self) -> Trial | None:
        """The finished trial with the best metric (``None`` without a metric or a result)."""
        with self._lock:
            scored = [t for t in self._trials if t.state == "finished" and t.metric is not None]
        if not scored:
            return None
        pick = max if self.goal == "maximize" else min
        return pick(scored, key=lambda t: t.metric)  # type: ignore[arg-type,return-value]

    def close(self) -> None:
        """Forget the sweep: its id no longer finds it (``run_agent``, ``wandb.agent``)."""
        unregister(self)

    def __enter__(self) -> LocalSweep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def results(self) -> dict[str, Any]:
        """A JSON-safe report: every trial and the best one."""
        best = self.best()
        return {
            "sweep_id": self.sweep_id,
            "method": self.method,
            "metric": self.config.get("metric"),
            "trials": [t.as_dict() for t in self.trials],
            "best": best.as_dict() if best else None,
        }


# Local sweeps by id, from creation until close(): a @wandb_sweep task closes the sweep it
# created when it ends (after its log download); create_local_sweep's caller closes its own.
_registry: dict[str, LocalSweep] = {}
_registry_lock = threading.Lock()


def register(sweep: LocalSweep) -> None:
    with _registry_lock:
        _registry[sweep.sweep_id] = sweep


def unregister(sweep: LocalSweep) -> None:
    with _registry_lock:
        if _registry.get(sweep.sweep_id) is sweep:
            del _registry[sweep.sweep_id]


def lookup(sweep_id: str) -> LocalSweep | None:
    """The local sweep with this id, if this process controls it."""
    with _registry_lock:
        return _registry.get(sweep_id)


def create_local_sweep(
    config: Mapping[str, Any],
    *,
    project: str | None = None,
    entity: str | None = None,
    sweep_id: str | None = None,
    state: str | None = None,
) -> LocalSweep:
    """Create and register a local sweep (the offline counterpart of ``wandb.sweep``).

    Its id finds it (``run_agent``, ``wandb.agent``) until :meth:`LocalSweep.close`; use it as
    ``with create_local_sweep(...) as sweep:`` to close it at the end of the block. ``state``
    (a path or object store URL) keeps the finished trials there, after each one; a sweep
    created later with the same id, configuration and ``state`` resumes from them.
    """
    sweep = LocalSweep(sweep_id or new_id(), config, project=project, entity=entity, state=state)
    register(sweep)
    return sweep
