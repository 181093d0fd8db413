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
* **Finish order in shared mode** (``_shared_finish.SharedFinish``, beside this module):
  secondaries finish (which flushes their data) before the primary marks the run finished, a
  failed secondary fails the shared run, and the writers share one ``finish_timeout``.

Nothing here imports wandb; torch is imported only to reach the job's store (:func:`job_id` of a
launcher job without a rendezvous id, and ``SharedFinish``), in processes of a torch job.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from typing import Any, Protocol

from flyteplugins.wandb_core import Topology, make_base

logger = logging.getLogger("flyteplugins.wandb")

#: Variables of a W&B sweep agent's trial. They belong to the agent's run and are never removed.
SWEEP_AGENT_VARS = ("WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH")

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


def agree(store: Store, proposal: str) -> str:
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
    store = open_store(STORE_CONNECT_TIMEOUT_S, environ)
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
        return make_base("local", name)  # as the resolver does without a launcher base
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


class Store(Protocol):
    def set(self, key: str, value: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def check(self, keys: list[str]) -> bool: ...
    def compare_set(self, key: str, expected_value: str, desired_value: str) -> bytes: ...


_STORE_CACHE: dict[str, Any] = {}


def open_store(timeout_s: float, environ: Mapping[str, str] | None = None) -> Store | None:
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
        store: Store = _STORE_CACHE[key]
        return store
    return None
