"""Distributed jobs (torchrun, PyTorch Elastic, Flyte's clustered launcher) around core's plan:
the shape a task's config launches (for its links) and, in a process of the job, its topology,
the W&B variables it must not inherit, its job's id and store, and the GPU its metrics watch."""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
import uuid
import warnings
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from typing import Any

from flyteplugins.wandb_core import Topology, TopologyError, make_base, parse_nnodes

from ._resolve import own_settings

logger = logging.getLogger("flyteplugins.wandb")

GPU_SETTING = "x_stats_gpu_device_ids"  # the wandb setting that limits system metrics to GPUs
JOB_ID_KEY = "flyteplugins-wandb/job-id"  # the job's id in its store, for every rank and restart
LAUNCHER_MARKERS = ("TORCHELASTIC_RUN_ID", "FLYTE_CLUSTERED_WORKER")  # set only by launchers


def shape_of_config(config: object) -> tuple[int | str, int] | None:
    """``(nnodes, nproc_per_node)`` a task plugin config launches; ``None`` for one process.
    ``flyteplugins-pytorch``'s ``Elastic`` (``nnodes`` may be a range ``"1:4"``) and Flyte's
    clustered settings are recognised only when their module is imported (a task with such a
    config imported it): a plain task never imports torch."""
    elastic = getattr(sys.modules.get("flyteplugins.pytorch.task"), "Elastic", None)
    if elastic is not None and isinstance(config, elastic):
        nnodes, nproc = config.nnodes, config.nproc_per_node
        parse_nnodes(nnodes)  # a malformed value fails here, naming it, not at submit time
        if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
            raise ValueError(f"invalid Elastic nproc_per_node {nproc!r}: expected an int >= 1")
        return nnodes, nproc
    clustered = getattr(sys.modules.get("flyte.clustered._environment"), "ClusteredSettings", None)
    settings = getattr(config, "settings", None)
    if clustered is not None and isinstance(settings, clustered):
        return settings.replicas, settings.nproc_per_node
    return None


class WandbStrayRank(UserWarning):
    """``RANK`` or ``WORLD_SIZE`` is set alone in a process no distributed launcher started."""


def read_topology(environ: Mapping[str, str]) -> Topology | None:
    """The process's topology; ``None`` outside a distributed job. A lone ``RANK`` or
    ``WORLD_SIZE`` outside a launcher is a leftover of a shell or pod spec (or an Elastic task
    run inline by Flyte's local mode): a warning, and a single process. Under a launcher the job
    is broken: core's error stands."""
    try:
        return Topology.from_env(environ)
    except TopologyError as exc:
        if exc.present is None or any(environ.get(name) for name in LAUNCHER_MARKERS):
            raise
        warnings.warn(
            f"{exc.present}={environ[exc.present].strip()} is set but {exc.missing} is not, and no "
            f"distributed launcher started this process (neither {' nor '.join(LAUNCHER_MARKERS)} "
            f"is set): {exc.present} is ignored and W&B treats this task as a single process. "
            f"Unset {exc.present} in the task's environment to silence this warning.",
            WandbStrayRank,
            stacklevel=3,
        )
        return None


def clean_worker_environment(environ: MutableMapping[str, str], *, pid: int) -> list[str]:
    """Remove (and name) what a worker must not inherit from its launcher: another process's
    ``WANDB_SERVICE`` (it dies with the launcher) and ``WANDB_RUN_ID`` (the launcher's run,
    except in a sweep agent's trial, where the agent assigned it)."""
    owner = re.match(r"\d+-(\d+)-", environ.get("WANDB_SERVICE", ""))
    stale = {
        "WANDB_SERVICE": owner is None or int(owner.group(1)) != pid,
        "WANDB_RUN_ID": not environ.get("WANDB_SWEEP_ID"),
    }
    removed = [name for name, drop in stale.items() if drop and name in environ]
    for name in removed:
        del environ[name]
    return removed


def rendezvous_id(environ: Mapping[str, str]) -> str | None:
    """``TORCHELASTIC_RUN_ID``, unless it is torchrun's placeholder ``none`` (or empty)."""
    raw = (environ.get("TORCHELASTIC_RUN_ID") or "").strip()
    return None if raw.lower() in ("", "none") else raw


def agree(store: Any, proposal: str) -> str:
    """The job id in ``store``: the first proposal stored wins (an atomic compare-and-set, no
    waiting on other ranks); the store outlives the workers, so a restart reads the same id."""
    return str(store.compare_set(JOB_ID_KEY, "", proposal).decode())


_warned_no_store = False


def job_id(topology: Topology, environ: Mapping[str, str]) -> str:
    """The id every rank and restart of this job agrees on: the rendezvous id, else one agreed in
    the job's store, else this rank's own (warning once, naming ``--rdzv-id``)."""
    if rdzv := rendezvous_id(environ):
        return rdzv
    proposal = "job-" + uuid.uuid4().hex[:12]
    if (store := open_store(30.0, environ)) is not None:
        try:
            return agree(store, proposal)
        except Exception as exc:  # the store went away: fall back to the rank's own proposal
            logger.warning("W&B: cannot agree on a job id through the job's store: %s", exc)
    global _warned_no_store
    if topology.world_size > 1 and not _warned_no_store:
        _warned_no_store = True
        logger.warning(
            "W&B: this job has no rendezvous id (TORCHELASTIC_RUN_ID=%r) and no store its ranks "
            "share, so its ranks get different run ids (%s here). Give the job a unique id: "
            "torchrun --rdzv-id=<job id>.",
            environ.get("TORCHELASTIC_RUN_ID"),
            proposal,
        )
    return proposal


def launcher_base(name: str, topology: Topology | None, environ: Mapping[str, str]) -> str:
    """The base id of a call no Flyte action names (the function ``name`` under ``torchrun``):
    ``{job id}-{name}``, or ``local-{name}`` for a single process."""
    return make_base("local" if topology is None else job_id(topology, environ), name)


def visible_gpu_ids(environ: Mapping[str, str], count: int | None = None) -> list[int] | None:
    """Physical indices of the ``count`` GPUs this process sees (default: torch's count when the
    program imported torch, else the NVIDIA device nodes); ``None`` without CUDA, or when
    ``CUDA_VISIBLE_DEVICES`` names UUIDs (W&B's monitor enumerates physical devices)."""
    if count is None:
        torch = sys.modules.get("torch")
        try:  # a broken CUDA install must not break logging
            count = int(torch.cuda.device_count()) if torch else len(glob.glob("/dev/nvidia[0-9]*"))
        except Exception:
            count = 0
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if count <= 0 or raw is None:
        return list(range(count)) or None
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    return [int(p) for p in parts][:count] if parts and all(p.isdigit() for p in parts) else None


def worker_settings(
    topology: Topology | None,
    environ: Mapping[str, str],
    user_settings: Any = None,
    *,
    gpu_count: int | None = None,
) -> dict[str, Any]:
    """The ``wandb.Settings`` fields added for one rank: its system metrics watch the GPU of its
    ``LOCAL_RANK``, not every GPU of the node (unless the user set :data:`GPU_SETTING`)."""
    if topology is None:
        return {}
    gpus = visible_gpu_ids(environ, gpu_count)
    if not gpus or GPU_SETTING in own_settings(user_settings):
        return {}
    import wandb

    if GPU_SETTING not in wandb.Settings.model_fields:  # older clients lack it
        return {}
    return {GPU_SETTING: [gpus[topology.local_rank % len(gpus)]]}


_stores: dict[str, Any] = {}


def open_store(timeout_s: float, environ: Mapping[str, str] = os.environ) -> Any:
    """A client of the job's c10d store at ``MASTER_ADDR:MASTER_PORT``, or ``None``: the agent's
    under torchrun / Elastic, else the one rank 0 of an initialised process group serves."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    addr, port = environ.get("MASTER_ADDR"), environ.get("MASTER_PORT", "")
    if not (addr and port.isdigit() and dist.is_available()):
        return None
    if environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" and not dist.is_initialized():
        return None
    key = f"{addr}:{port}"
    if key not in _stores:
        tcp_store: Any = getattr(dist, "TCPStore")  # noqa: B009 (not re-exported for mypy)
        try:
            _stores[key] = tcp_store(
                addr, int(port), is_master=False, timeout=timedelta(seconds=timeout_s)
            )
        except Exception as exc:  # the agent is gone: go on without the store
            logger.warning("W&B: cannot reach the job's store at %s: %s", key, exc)
            return None
    return _stores[key]
