"""What a distributed worker process needs around ``wandb.init`` / ``finish``.

Core decides who logs where (:func:`flyteplugins.wandb_core.plan`); this module adapts that plan to
one worker process of a PyTorch Elastic / torchrun job:

* **Hygiene** (:func:`clean_worker_environment`): W&B variables a worker inherits from the process
  that launched it and that would make it misbehave are removed from the worker's environment.
* **Job ids** (:func:`launcher_base`): a function that no Flyte action names (a plain function
  under ``torchrun``) gets its base id from something unique to its job, which every rank of the
  job agrees on and a restart of the job keeps (see :func:`job_id`).
* **Per-rank settings** (:func:`worker_settings`): the GPU the rank's system metrics watch.
* Restarts: a restarted worker (``TORCHELASTIC_RESTART_COUNT`` > 0, or
  ``JOBSET_RESTART_ATTEMPT`` > 0) plans the same run ids and the decorator starts runs with
  ``resume="allow"``, so it continues the first attempt's runs.
* **Finish order in shared mode** (:class:`SharedFinish`): secondaries finish (which flushes their
  data) before the primary marks the run finished, a failed secondary fails the shared run, and
  the writers share one ``finish_timeout``.

Nothing here imports wandb; torch is imported only to reach the job's store (:func:`job_id` of a
launcher job without a rendezvous id, and :class:`SharedFinish`), in processes of a torch job.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from flyteplugins.wandb_core import RunPlan, Topology, make_base, plan

from . import _resilience

logger = logging.getLogger("flyteplugins.wandb")

#: Variables of a W&B sweep agent's trial. They belong to the agent's run and are never removed.
SWEEP_AGENT_VARS = ("WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH")

#: Seconds a shared-mode primary waits for its secondaries to finish (and a failed secondary
#: waits for the primary) before giving up; override with this environment variable.
FINISH_TIMEOUT_ENV = "FLYTEPLUGINS_WANDB_SHARED_FINISH_TIMEOUT"
DEFAULT_FINISH_TIMEOUT_S = 300.0
#: On a failure path the peers may be stuck in a collective that will never complete: wait less.
FAILURE_GRACE_S = 30.0

_SERVICE_TOKEN = re.compile(r"\d+-(\d+)-")


def clean_worker_environment(environ: MutableMapping[str, str], *, pid: int) -> list[str]:
    """Remove inherited W&B variables that break a worker's own runs; return the names removed.

    * ``WANDB_SERVICE`` points wandb at a running wandb-core service. A worker inherits the
      launcher's token when the launcher used wandb before starting the workers; the worker would
      then send its runs through the launcher's service (which dies with the launcher and serves
      every rank from one process). A token whose owner process is not this one is removed, so
      the worker starts its own service. A token this process wrote itself is kept.
    * ``WANDB_RUN_ID`` outside a sweep agent's trial is the launcher's own run id: every rank
      would otherwise inherit one id. Inside a trial (``WANDB_SWEEP_ID`` set) the agent assigned it
      and it is kept, together with the other sweep-agent variables.
    """
    removed: list[str] = []
    token = environ.get("WANDB_SERVICE")
    if token is not None:
        match = _SERVICE_TOKEN.match(token)
        if match is None or int(match.group(1)) != pid:
            del environ["WANDB_SERVICE"]
            removed.append("WANDB_SERVICE")
    if "WANDB_RUN_ID" in environ and not environ.get("WANDB_SWEEP_ID"):
        del environ["WANDB_RUN_ID"]
        removed.append("WANDB_RUN_ID")
    return removed


#: Rendezvous ids a launcher sets when the user chose none (torchrun's ``--rdzv-id`` default).
PLACEHOLDER_RDZV_IDS = frozenset({"", "none"})
#: The key of the job id in the job's store, shared by every call of every rank and attempt.
JOB_ID_KEY = "flyteplugins-wandb/job-id"
#: Seconds a worker may take to connect to the job's store before it gives up on it.
STORE_CONNECT_TIMEOUT_S = 30.0


def rendezvous_id(environ: Mapping[str, str]) -> str | None:
    """The launcher's rendezvous id (``TORCHELASTIC_RUN_ID``), unless it is a placeholder."""
    raw = (environ.get("TORCHELASTIC_RUN_ID") or "").strip()
    return None if raw.lower() in PLACEHOLDER_RDZV_IDS else raw


def proposed_job_id() -> str:
    """What this rank proposes as the job id when the launcher gives no rendezvous id: a fresh
    random id (the first proposal stored in the job's store wins, see :func:`agree`)."""
    return "job-" + uuid.uuid4().hex[:12]


def agree(store: _Store, proposal: str) -> str:
    """The job id every rank of the job gets from ``store``: the first proposal stored wins.

    Atomic (compare-and-set on a missing key) and wait-free: no rank waits for another. The key
    outlives the workers (the agent's store lives as long as the job), so a restarted attempt
    reads the first attempt's id.
    """
    return store.compare_set(JOB_ID_KEY, "", proposal).decode()


_warned_no_store = False


def job_id(topology: Topology, environ: Mapping[str, str]) -> str:
    """The id of the job this rank belongs to, for :func:`launcher_base`.

    1. The launcher's rendezvous id (``torchrun --rdzv-id``, or the uuid ``torchrun`` draws
       for a single-node job without ``--master-port``), unless it is the placeholder ``none``.
    2. Else an id the ranks agree on through the job's store (:func:`agree`): the agent's store
       under torchrun (``TORCHELASTIC_USE_AGENT_STORE=True``), else the default process group's
       store while one is initialised.
    3. Else, without any store: this rank's own :func:`proposed_job_id`; ranks cannot agree
       without a store, so a job of several ranks gets a warning naming ``--rdzv-id``.
    """
    rdzv = rendezvous_id(environ)
    if rdzv:
        return rdzv
    proposal = proposed_job_id()
    store = _open_store(STORE_CONNECT_TIMEOUT_S, environ)
    if store is not None:
        try:
            return agree(store, proposal)
        except Exception as exc:  # the store went away: fall back to the rank's own proposal
            logger.warning("W&B: cannot agree on a job id through the job's store: %s", exc)
    global _warned_no_store
    if topology.world_size > 1 and not _warned_no_store:
        _warned_no_store = True
        logger.warning(
            "W&B: this job has no rendezvous id (TORCHELASTIC_RUN_ID=%r) and no store its ranks "
            "share, so its ranks get different run ids (%s here). Give the job "
            "a unique id: torchrun --rdzv-id=<job id>.",
            environ.get("TORCHELASTIC_RUN_ID"),
            proposal,
        )
    return proposal


def launcher_base(name: str, topology: Topology | None, environ: Mapping[str, str]) -> str:
    """The base id of a call that no Flyte action names (a function under ``torchrun``).

    ``name`` is the decorated function's qualified name; the base is ``{job id}-{name}`` with
    the :func:`job_id` of a distributed job. A single process gets ``local-{name}`` (its run
    takes a fresh id from the client: the base names nothing that persists).
    """
    if topology is None:
        return make_base("local", name)  # as _resolve.local_base
    return make_base(job_id(topology, environ), name)


def cuda_device_count() -> int:
    """How many CUDA devices this process sees, without importing torch.

    torch is consulted only when the program already imported it (an Elastic worker always has);
    otherwise the NVIDIA device nodes tell.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return int(torch.cuda.device_count())
        except Exception:  # a broken CUDA install must not break logging
            return 0
    return sum(1 for n in _dev_names() if n.startswith("nvidia") and n[6:].isdigit())


def visible_gpu_ids(environ: Mapping[str, str], count: int | None = None) -> list[int] | None:
    """The physical indices of the GPUs this process may use; ``None`` when CUDA is not visible.

    ``count`` is the number of devices the process sees (default: :func:`cuda_device_count`).
    ``CUDA_VISIBLE_DEVICES`` maps logical to physical indices (W&B's monitor enumerates physical
    devices); a list of UUIDs cannot be mapped and gives ``None``, so W&B keeps its default of
    watching every GPU.
    """
    if count is None:
        count = cuda_device_count()
    if count <= 0:
        return None
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(count))
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts][:count]


def _dev_names() -> list[str]:
    try:
        return os.listdir("/dev")
    except OSError:
        return []


#: The wandb setting that limits system metrics to some GPUs (its name in wandb 0.31).
GPU_SETTING = "x_stats_gpu_device_ids"


def wandb_has_setting(name: str) -> bool:
    """Whether the installed wandb knows the setting ``name`` (older clients lack some).

    Imports wandb: call it only in a process that is about to start a run.
    """
    try:
        from wandb import Settings
    except ImportError:
        return False
    return name in getattr(Settings, "model_fields", {})


def worker_settings(
    topology: Topology | None,
    environ: Mapping[str, str],
    user_settings: Any = None,
    *,
    gpu_count: int | None = None,
) -> dict[str, Any]:
    """The ``wandb.Settings`` fields this plugin adds for one rank of a distributed job.

    With CUDA visible, a rank's system metrics watch the GPU of its ``LOCAL_RANK``
    (``x_stats_gpu_device_ids``, the wandb 0.31 name; left out when the installed wandb does not
    have it), the device ``torch.cuda.set_device(local_rank)`` selects; without it every rank of a
    node would report every GPU of the node.
    A field the user set in their own ``settings`` (a dict or a ``wandb.Settings``) is left out.
    Shared-mode fields (``x_primary``, ``x_label``, ``x_update_finish_state``) come from the plan
    and are set by the backend.
    """
    if topology is None:
        return {}
    gpu_ids = visible_gpu_ids(environ, gpu_count)
    if not gpu_ids:
        return {}
    if not wandb_has_setting(GPU_SETTING):
        return {}
    out = {GPU_SETTING: [gpu_ids[topology.local_rank % len(gpu_ids)]]}
    if isinstance(user_settings, Mapping):
        explicit: set[str] = set(user_settings)
    else:
        explicit = set(getattr(user_settings, "model_fields_set", ()))
    return {k: v for k, v in out.items() if k not in explicit}


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


class _Store(Protocol):
    def set(self, key: str, value: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def check(self, keys: list[str]) -> bool: ...
    def compare_set(self, key: str, expected_value: str, desired_value: str) -> bytes: ...


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
        self, store: _Store, what: str, ranks: tuple[int, ...], wait_s: float
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
        store = _open_store(self.timeout_s)
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
        store = _open_store(self.timeout_s)
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


_STORE_CACHE: dict[str, Any] = {}


def _open_store(timeout_s: float, environ: Mapping[str, str] | None = None) -> _Store | None:
    """A client of the job's c10d store (see :class:`SharedFinish`), or ``None``."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    if not dist.is_available():
        return None
    env = os.environ if environ is None else environ
    addr, port = env.get("MASTER_ADDR"), env.get("MASTER_PORT")
    # The agent's store under torchrun / Elastic; else the store of a process group initialised
    # from the environment (env://), which its rank 0 serves at the same address.
    shared = env.get("TORCHELASTIC_USE_AGENT_STORE") == "True" or dist.is_initialized()
    if shared and addr and port and port.isdigit():
        key = f"{addr}:{port}"
        if key not in _STORE_CACHE:
            tcp_store: Any = getattr(dist, "TCPStore")  # noqa: B009 (not re-exported for mypy)
            try:
                _STORE_CACHE[key] = tcp_store(
                    addr, int(port), is_master=False, timeout=timedelta(seconds=timeout_s)
                )
            except Exception as exc:  # the agent is gone: finish without ordering
                logger.warning("W&B: cannot reach the job's store at %s: %s", key, exc)
                return None
        store: _Store = _STORE_CACHE[key]
        return store
    return None
