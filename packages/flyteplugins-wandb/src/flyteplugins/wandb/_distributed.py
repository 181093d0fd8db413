"""What a distributed worker process needs around ``wandb.init`` / ``finish``.

Core decides who logs where (:func:`flyteplugins.wandb_core.plan`); this module adapts that plan to
one worker process of a PyTorch Elastic / torchrun job:

* **Hygiene** (:func:`clean_worker_environment`): W&B variables a worker inherits from the process
  that launched it and that would make it misbehave are removed from the worker's environment.
* **Per-rank settings** (:func:`worker_settings`): the GPU the rank's system metrics watch.
* Restarts need nothing here: a restarted worker (``TORCHELASTIC_RESTART_COUNT`` > 0, or
  ``JOBSET_RESTART_ATTEMPT`` > 0) plans the same run ids and the decorator starts runs with
  ``resume="allow"``, so it continues the first attempt's runs.
* **Finish order in shared mode** (:class:`SharedFinish`): secondaries finish (which flushes their
  data) before the primary marks the run finished, and a failed secondary fails the shared run.

Nothing here imports wandb; torch is imported only by :class:`SharedFinish`, which only shared-mode
ranks of a torch job create.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from flyteplugins.wandb_core import RunPlan, Topology, plan

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


def launcher_base(name: str, topology: Topology | None, environ: Mapping[str, str]) -> str:
    """The base id of a call that no Flyte action names (a function under ``torchrun``).

    ``name`` is the decorated function's qualified name.
    """
    from flyteplugins.wandb_core import make_base

    return make_base(environ.get("TORCHELASTIC_RUN_ID") or "local", name)


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


@dataclass
class SharedFinish:
    """Orders the finishes of the ranks that write one shared run.

    The mechanism is the job's c10d key-value store, not a collective: no barrier that a rank
    stuck elsewhere could deadlock, and it works after the user destroyed the process group.
    Under torchrun / Elastic the workers reach the agent's store at ``MASTER_ADDR:MASTER_PORT``
    (``TORCHELASTIC_USE_AGENT_STORE=True``); otherwise the default process group's store is used
    while the group is initialised. With neither, ranks finish in whatever order they reach it.

    * A secondary finishes its run (which flushes its data), then publishes its exit code.
    * The primary waits for every secondary's exit code before finishing, and finishes with
      exit code 1 when any secondary failed or did not report in time, so the shared run shows
      failed when any rank failed.
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

    @classmethod
    def for_plan(
        cls,
        plan_: RunPlan,
        topology: Topology | None,
        base: str,
        environ: Mapping[str, str],
        **kw: Any,
    ) -> SharedFinish | None:
        """The handshake of this rank, or ``None`` when it does not write a shared run.

        ``base`` and ``kw`` (``parent_id``, ``user_id``) are what the rank's own plan was made
        with: every rank of the job is planned the same way to learn who the secondaries are.
        """
        if topology is None or not (plan_.initializes and plan_.shared) or plan_.run_id is None:
            return None
        writers = []
        for other in Topology.enumerate(topology.num_workers, topology.local_world_size):
            p = plan(plan_.run_mode, plan_.rank_scope, other, base, **kw)
            if p.initializes and p.shared and p.run_id == plan_.run_id:
                writers.append((other.rank, p.primary))
        secondaries = tuple(rank for rank, primary in writers if not primary)
        job = environ.get("TORCHELASTIC_RUN_ID") or environ.get("JOBSET_NAME") or "job"
        restart = environ.get("JOBSET_RESTART_ATTEMPT", "0")
        namespace = f"flyteplugins-wandb/{job}/{topology.restart_count}.{restart}/{plan_.run_id}"
        return cls(
            run_id=plan_.run_id,
            rank=topology.rank,
            primary=plan_.primary,
            secondaries=secondaries,
            has_primary=any(primary for _, primary in writers),
            namespace=namespace,
            timeout_s=finish_timeout(environ),
        )

    def _key(self, what: str) -> str:
        return f"{self.namespace}/{what}"

    def before_finish(self, exit_code: int) -> int:
        """Primary: wait for the secondaries; return the exit code the shared run finishes with."""
        if not self.primary or not self.secondaries:
            return exit_code
        store = _open_store(self.timeout_s)
        if store is None:
            return exit_code
        wait_s = self.timeout_s if exit_code == 0 else min(self.timeout_s, FAILURE_GRACE_S)
        pending = {r: self._key(f"done/{r}") for r in self.secondaries}
        failed: list[int] = []
        deadline = time.monotonic() + wait_s
        while pending:
            for rank, key in list(pending.items()):
                if store.check([key]):
                    code = store.get(key).decode()
                    if code != "0":
                        failed.append(rank)
                    del pending[rank]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if pending:
            logger.warning(
                "W&B shared run %s: ranks %s did not finish within %.0f s (%s); "
                "marking the run failed",
                self.run_id,
                sorted(pending),
                wait_s,
                FINISH_TIMEOUT_ENV,
            )
        if failed:
            logger.warning("W&B shared run %s: ranks %s failed", self.run_id, sorted(failed))
        return 1 if (exit_code != 0 or failed or pending) else 0

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


def _open_store(timeout_s: float) -> _Store | None:
    """A client of the job's c10d store (see :class:`SharedFinish`), or ``None``."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    if not dist.is_available():
        return None
    env = os.environ
    addr, port = env.get("MASTER_ADDR"), env.get("MASTER_PORT")
    if env.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and addr and port and port.isdigit():
        key = f"{addr}:{port}"
        if key not in _STORE_CACHE:
            from datetime import timedelta

            tcp_store: Any = getattr(dist, "TCPStore")  # noqa: B009 (not re-exported for mypy)
            try:
                _STORE_CACHE[key] = tcp_store(
                    addr, int(port), is_master=False, timeout=timedelta(seconds=timeout_s)
                )
            except Exception as exc:  # the agent is gone: finish without ordering
                logger.warning("W&B shared mode: cannot reach the job's store at %s: %s", key, exc)
                return None
        store: _Store = _STORE_CACHE[key]
        return store
    if dist.is_initialized():
        try:
            default: _Store = dist.distributed_c10d._get_default_store()
        except Exception:
            return None
        return default
    return None
