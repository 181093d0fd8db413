"""Shared mode in a distributed job: the order of the writers' finishes, within one budget,
through the job's key-value store (:class:`SharedFinish`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from flyteplugins.wandb_core import RunPlan, Topology, plan

from . import _resilience
from ._distributed import open_store

logger = logging.getLogger("flyteplugins.wandb")

#: Seconds a primary waits for its secondaries' code to return (default 300).
FINISH_TIMEOUT_ENV = "FLYTEPLUGINS_WANDB_SHARED_FINISH_TIMEOUT"
#: On a failure path the peers may be stuck in a collective that will never complete: wait less.
FAILURE_GRACE_S = 30.0
#: Seconds of the budget kept for a secondary to report that it finished (at most a fifth).
REPORT_MARGIN_S = 2.0


def finish_timeout(environ: Mapping[str, str]) -> float:
    """Seconds the shared-mode finish handshake may wait (``FINISH_TIMEOUT_ENV``)."""
    raw = environ.get(FINISH_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw.strip() else 300.0
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"{FINISH_TIMEOUT_ENV}={raw!r} must be > 0 (seconds, e.g. 300)")
    return value


class FinishShares(NamedTuple):
    """How the writers of one shared run split its ``finish_timeout`` (``budget``): the
    secondaries finish at once within ``secondary``; the primary waits for them at most ``wait``
    (their share and the margin to report), then finishes within ``primary``."""

    budget: float
    secondary: float
    primary: float

    @property
    def wait(self) -> float:
        return self.budget - self.primary


def split_finish(budget: float) -> FinishShares | None:
    """The shares of ``budget`` seconds (``None`` for 0: no limit, every writer waits)."""
    half = (budget - min(REPORT_MARGIN_S, budget / 5)) / 2
    return FinishShares(budget, half, half) if budget > 0 else None


def _collect(store: Any, keys: dict[int, str], wait_s: float) -> dict[int, str]:
    """The values of ``keys`` published within ``wait_s`` seconds."""
    found: dict[int, str] = {}
    deadline = time.monotonic() + wait_s
    while True:
        for rank in keys.keys() - found.keys():
            if store.check([keys[rank]]):
                found[rank] = store.get(keys[rank]).decode()
        if len(found) == len(keys) or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


@dataclass
class SharedFinish:
    """Orders the finishes of one shared run's writers within one budget, through the job's store
    (no barrier a rank stuck elsewhere could deadlock; it outlives the process group). A
    secondary publishes its exit code, finishes within its share, then that it is done; the
    primary waits for the codes (``FINISH_TIMEOUT_ENV``), then their finishes, then finishes: the
    run fails when a secondary failed or never returned. A failed secondary waits for the
    primary's finish, as the agent then tears down the surviving workers."""

    run_id: str
    rank: int
    primary: bool
    secondaries: tuple[int, ...]
    has_primary: bool
    namespace: str
    timeout_s: float
    shares: FinishShares | None = None
    began: float | None = None  # time.monotonic() when this writer's finish began

    @classmethod
    def for_plan(
        cls,
        plan_: RunPlan,
        topology: Topology | None,
        base: str,
        environ: Mapping[str, str],
        *,
        plugin_timeout: Any = None,
        user_settings: Any = None,
        **kw: Any,
    ) -> SharedFinish | None:
        """This rank's handshake (``None``: it writes no shared run); every rank is planned as
        ``plan_`` was (``base``, ``kw``) to find the secondaries."""
        if topology is None or not (plan_.initializes and plan_.shared) or plan_.run_id is None:
            return None
        writers = {}
        for other in Topology.enumerate(topology.num_workers, topology.local_world_size):
            p = plan(plan_.run_mode, plan_.rank_scope, other, base, **kw)
            if p.initializes and p.shared and p.run_id == plan_.run_id:
                writers[other.rank] = p.primary
        secondaries = tuple(rank for rank, primary in writers.items() if not primary)
        has_primary = any(writers.values())
        shares = None
        if has_primary and secondaries:
            shares = split_finish(_resilience.finish_budget(plugin_timeout, user_settings, environ))
        job = environ.get("TORCHELASTIC_RUN_ID") or environ.get("JOBSET_NAME") or "job"
        attempt = f"{topology.restart_count}.{environ.get('JOBSET_RESTART_ATTEMPT', '0')}"
        ns = f"flyteplugins-wandb/{job}/{attempt}/{plan_.run_id}"
        args = (plan_.run_id, topology.rank, plan_.primary, secondaries, has_primary, ns)
        return cls(*args, finish_timeout(environ), shares)

    @property
    def finish_timeout(self) -> float | None:
        """This writer's share of the budget (``None``: not split)."""
        shares = self.shares
        return None if shares is None else (shares.primary if self.primary else shares.secondary)

    def before_finish(self, exit_code: int) -> int:
        """Before this writer finishes: a secondary publishes its exit code, the primary waits
        for the secondaries; return the exit code the run finishes with."""
        self.began = time.monotonic()
        store, ns = open_store(self.timeout_s), self.namespace
        if store is None or (self.primary and not self.secondaries):
            return exit_code
        if not self.primary:
            store.set(f"{ns}/code/{self.rank}", str(exit_code))
            return exit_code
        grace = self.timeout_s if exit_code == 0 else min(self.timeout_s, FAILURE_GRACE_S)
        codes = _collect(store, {r: f"{ns}/code/{r}" for r in self.secondaries}, grace)
        self.began = time.monotonic()  # the job's code has returned: the budget starts
        upload_s = self.shares.wait if self.shares is not None else self.timeout_s
        if exit_code != 0:
            upload_s = min(upload_s, FAILURE_GRACE_S)
        done = _collect(store, {r: f"{ns}/done/{r}" for r in codes}, upload_s)
        stuck = sorted(set(self.secondaries) - codes.keys())
        failed = sorted(r for r, code in codes.items() if code != "0")
        for ranks, why in (
            (stuck, f"did not return from their code within {grace:.0f} s ({FINISH_TIMEOUT_ENV}); "
             "marking the run failed"),
            (failed, "failed"),
            (sorted(codes.keys() - done.keys()), f"were still uploading after {upload_s:.1f} s "
             "(their share of finish_timeout); finishing the run without them"),
        ):  # fmt: skip
            if ranks:
                logger.warning("W&B shared run %s: ranks %s %s", self.run_id, ranks, why)
        return 1 if (exit_code != 0 or failed or stuck) else 0

    def finish_report(self) -> dict[str, float | None]:
        """``_backend.finish_run``'s keywords: when this finish began, the budget it shares."""
        if self.shares is None:
            return {"since": self.began}
        share = None if self.primary else self.shares.secondary
        return {"since": self.began, "limit": self.shares.budget, "share": share}

    def after_finish(self, exit_code: int) -> None:
        """Publish this rank's finish; a failed secondary waits for the primary to finish."""
        store = open_store(self.timeout_s)
        key = f"{self.namespace}/" + ("primary-done" if self.primary else f"done/{self.rank}")
        if store is not None:
            store.set(key, str(exit_code))
            if exit_code != 0 and not self.primary and self.has_primary:
                primary = {0: f"{self.namespace}/primary-done"}
                _collect(store, primary, min(self.timeout_s, FAILURE_GRACE_S))
