"""Shared mode in a distributed job: the order of the writers' finishes, within one budget.

See :class:`SharedFinish`. The mechanism is the job's c10d key-value store
(``_distributed.open_store``), not a collective.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flyteplugins.wandb_core import RunPlan, Topology, plan

from . import _resilience
from ._distributed import Store, open_store

logger = logging.getLogger("flyteplugins.wandb")

#: Seconds a shared-mode primary waits for its secondaries to finish (and a failed secondary
#: waits for the primary) before giving up; override with this environment variable.
FINISH_TIMEOUT_ENV = "FLYTEPLUGINS_WANDB_SHARED_FINISH_TIMEOUT"
DEFAULT_FINISH_TIMEOUT_S = 300.0
#: On a failure path the peers may be stuck in a collective that will never complete: wait less.
FAILURE_GRACE_S = 30.0


def finish_timeout(environ: Mapping[str, str]) -> float:
    """Seconds the shared-mode finish handshake may wait (``FINISH_TIMEOUT_ENV``)."""
    raw = environ.get(FINISH_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_FINISH_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{FINISH_TIMEOUT_ENV}={raw!r} is not a number of seconds (e.g. 300)"
        ) from None
    if value <= 0:
        raise ValueError(f"{FINISH_TIMEOUT_ENV}={raw!r} must be > 0")
    return value


#: Seconds of a shared run's ``finish_timeout`` kept for a secondary to report that it finished
#: (at most a fifth of the budget).
REPORT_MARGIN_S = 2.0


@dataclass(frozen=True)
class FinishShares:
    """How the writers of one shared run split its ``finish_timeout`` (``budget``).

    The secondaries finish at the same time, each within ``secondary`` seconds; the primary waits
    for them at most ``wait`` seconds (their share and the margin to report), then finishes
    within ``primary``: ``wait + primary == budget``, so the whole job's finish after the code
    returned stays within the budget. The client enforces each writer's share as that writer's
    own ``finish_timeout``, which it reads when the run starts.
    """

    budget: float
    secondary: float
    primary: float

    @property
    def wait(self) -> float:
        return self.budget - self.primary


def split_finish(budget: float) -> FinishShares | None:
    """The shares of ``budget`` seconds (``None`` for 0: no limit, every writer waits)."""
    if budget <= 0:
        return None
    margin = min(REPORT_MARGIN_S, budget / 5)
    half = (budget - margin) / 2
    return FinishShares(budget=budget, secondary=half, primary=half)


@dataclass
class SharedFinish:
    """Orders the finishes of the ranks that write one shared run, within one budget.

    The mechanism is the job's c10d key-value store, not a collective: no barrier that a rank
    stuck elsewhere could deadlock, and it works after the user destroyed the process group.
    Under torchrun / Elastic the workers reach the agent's store at ``MASTER_ADDR:MASTER_PORT``
    (``TORCHELASTIC_USE_AGENT_STORE=True``); otherwise the default process group's store is used
    while the group is initialised. With neither, ranks finish in whatever order they reach it.

    * A secondary publishes its exit code when its code returns, finishes its run (which
      flushes its data) within its share of ``finish_timeout``, then publishes that it is done.
    * The primary waits for every secondary's exit code (their code may still be running:
      ``FINISH_TIMEOUT_ENV`` bounds that), then for their finishes within the secondaries' share
      of ``finish_timeout`` (:class:`FinishShares`), then finishes within its own share. It
      finishes with exit code 1 when any secondary failed or never returned from its code, so
      the shared run shows failed when any rank failed; a secondary still uploading when its
      share ran out does not fail the run (its own warning names what it did not upload).
    * After finishing, the primary publishes that it is done; a *failed* secondary waits for it
      before its process exits, because the agent tears down the surviving workers as soon as
      one exits with an error.
    """

    run_id: str
    rank: int
    primary: bool
    secondaries: tuple[int, ...]
    has_primary: bool
    namespace: str
    timeout_s: float
    shares: FinishShares | None = None
    began: float | None = field(default=None, compare=False)
    """When this writer's finish began (``time.monotonic()``): for the primary, when the last
    secondary's code had returned."""

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
        """The handshake of this rank, or ``None`` when it does not write a shared run.

        ``base`` and ``kw`` (``parent_id``, ``user_id``) are what the rank's own plan was made
        with: every rank of the job is planned the same way to learn who the secondaries are.
        ``plugin_timeout`` is the plugin's own ``finish_timeout`` (``None`` when not set) and
        ``user_settings`` the user's ``settings=``: together they give the run's budget, which a
        run with a primary and secondaries splits (:attr:`shares`; :attr:`finish_timeout` is
        this writer's part). Nothing passed in is changed.
        """
        if topology is None or not (plan_.initializes and plan_.shared) or plan_.run_id is None:
            return None
        writers = []
        for other in Topology.enumerate(topology.num_workers, topology.local_world_size):
            p = plan(plan_.run_mode, plan_.rank_scope, other, base, **kw)
            if p.initializes and p.shared and p.run_id == plan_.run_id:
                writers.append((other.rank, p.primary))
        secondaries = tuple(rank for rank, primary in writers if not primary)
        has_primary = any(primary for _, primary in writers)
        shares = None
        if has_primary and secondaries:
            shares = split_finish(_resilience.finish_budget(plugin_timeout, user_settings, environ))
        job = environ.get("TORCHELASTIC_RUN_ID") or environ.get("JOBSET_NAME") or "job"
        restart = environ.get("JOBSET_RESTART_ATTEMPT", "0")
        namespace = f"flyteplugins-wandb/{job}/{topology.restart_count}.{restart}/{plan_.run_id}"
        return cls(
            run_id=plan_.run_id,
            rank=topology.rank,
            primary=plan_.primary,
            secondaries=secondaries,
            has_primary=has_primary,
            namespace=namespace,
            timeout_s=finish_timeout(environ),
            shares=shares,
        )

    @property
    def finish_timeout(self) -> float | None:
        """This writer's own ``finish_timeout`` (its share of the run's budget, which the client
        enforces from the run's start), or ``None`` when the budget is not split."""
        if self.shares is None:
            return None
        return self.shares.primary if self.primary else self.shares.secondary

    def _key(self, what: str) -> str:
        return f"{self.namespace}/{what}"

    def _collect(
        self, store: Store, what: str, ranks: tuple[int, ...], wait_s: float
    ) -> dict[int, str]:
        """The values the ``ranks`` published under ``what`` within ``wait_s`` seconds."""
        pending = {r: self._key(f"{what}/{r}") for r in ranks}
        found: dict[int, str] = {}
        deadline = time.monotonic() + wait_s
        while pending:
            for rank, key in list(pending.items()):
                if store.check([key]):
                    found[rank] = store.get(key).decode()
                    del pending[rank]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        return found

    def before_finish(self, exit_code: int) -> int:
        """Before this writer finishes: return the exit code its run finishes with.

        A secondary publishes its exit code; the primary waits for the secondaries (see the
        class) and returns the shared run's exit code.
        """
        self.began = time.monotonic()
        store = open_store(self.timeout_s)
        if store is None:
            return exit_code
        if not self.primary:
            store.set(self._key(f"code/{self.rank}"), str(exit_code))
            return exit_code
        if not self.secondaries:
            return exit_code
        grace = self.timeout_s if exit_code == 0 else min(self.timeout_s, FAILURE_GRACE_S)
        codes = self._collect(store, "code", self.secondaries, grace)
        self.began = time.monotonic()  # the job's code has returned: the budget starts
        upload_s = self.shares.wait if self.shares is not None else self.timeout_s
        if exit_code != 0:
            upload_s = min(upload_s, FAILURE_GRACE_S)
        done = self._collect(store, "done", tuple(sorted(codes)), upload_s)
        stuck = sorted(set(self.secondaries) - set(codes))
        failed = sorted(r for r, code in codes.items() if code != "0")
        uploading = sorted(set(codes) - set(done))
        if stuck:
            logger.warning(
                "W&B shared run %s: ranks %s did not return from their code within %.0f s "
                "(%s); marking the run failed",
                self.run_id,
                stuck,
                grace,
                FINISH_TIMEOUT_ENV,
            )
        if failed:
            logger.warning("W&B shared run %s: ranks %s failed", self.run_id, failed)
        if uploading:
            logger.warning(
                "W&B shared run %s: ranks %s were still uploading after %.1f s (their share of "
                "finish_timeout); finishing the run without them",
                self.run_id,
                uploading,
                upload_s,
            )
        return 1 if (exit_code != 0 or failed or stuck) else 0

    def finish_report(self) -> dict[str, float | None]:
        """Keywords of ``_backend.finish_run`` for this writer: when its finish began, and the
        budget it shares with the other writers."""
        if self.shares is None:
            return {"since": self.began}
        return {
            "since": self.began,
            "limit": self.shares.budget,
            "share": None if self.primary else self.shares.secondary,
        }

    def after_finish(self, exit_code: int) -> None:
        """Publish this rank's finish; a failed secondary waits for the primary to finish."""
        store = open_store(self.timeout_s)
        if store is None:
            return
        if self.primary:
            store.set(self._key("primary-done"), str(exit_code))
            return
        store.set(self._key(f"done/{self.rank}"), str(exit_code))
        if exit_code != 0 and self.has_primary:
            deadline = time.monotonic() + min(self.timeout_s, FAILURE_GRACE_S)
            key = self._key("primary-done")
            while not store.check([key]) and time.monotonic() < deadline:
                time.sleep(0.05)
