"""W&B sweeps for Flyte 2: ``@wandb_sweep``, agents as Flyte tasks, a local controller, logs.

``@wandb_sweep`` creates a sweep when its task runs (on the W&B server, or with a local controller
built on W&B's open-source ``sweeps`` engine when offline); ``run_agent`` runs trials in the task;
``run_parallel_agents`` runs up to 20 agents as concurrent Flyte child tasks;
``download_run`` / ``download_sweep`` fetch every file, the full history and the summary of runs
(``download_wandb_run_dir``, ``download_wandb_sweep_dirs`` and the traced
``download_wandb_run_logs`` / ``download_wandb_sweep_logs`` are the 2.x functions, in the 2.x
layout), ``remove_downloaded_logs`` removes downloads. ``after_task`` / ``after_task_async`` are
the log download that ``@wandb_init(download_logs=True)`` runs after a task; the plugin finds them
through the ``flyteplugins.wandb.download`` entry points. Importing this package imports neither
``wandb`` nor the ``sweeps`` engine.
"""

from __future__ import annotations

from .__about__ import __version__
from ._agent import run_agent
from ._compat import (
    download_wandb_run_dir,
    download_wandb_run_logs,
    download_wandb_sweep_dirs,
    download_wandb_sweep_logs,
)
from ._context import (
    WandbSweepConfig,
    get_wandb_sweep_context,
    get_wandb_sweep_id,
    wandb_sweep_config,
)
from ._controller import LocalSweep, Trial, create_local_sweep
from ._decorator import wandb_sweep
from ._link import WandbSweep
from ._parallel import run_agent_work, run_parallel_agents, run_parallel_agents_sync
from ._trial import SweepTrialsFailed, run_trial
from ._validate import MAX_PARALLEL_AGENTS, SweepConfigError, validate_sweep_config
from .download import (
    DownloadError,
    DownloadResult,
    UnsafeFileName,
    after_task,
    after_task_async,
    default_download_dir,
    download_run,
    download_sweep,
    remove_downloaded_logs,
)

__all__ = [
    "MAX_PARALLEL_AGENTS",
    "DownloadError",
    "DownloadResult",
    "LocalSweep",
    "SweepConfigError",
    "SweepTrialsFailed",
    "Trial",
    "UnsafeFileName",
    "WandbSweep",
    "WandbSweepConfig",
    "__version__",
    "after_task",
    "after_task_async",
    "create_local_sweep",
    "default_download_dir",
    "download_run",
    "download_sweep",
    "download_wandb_run_dir",
    "download_wandb_run_logs",
    "download_wandb_sweep_dirs",
    "download_wandb_sweep_logs",
    "get_wandb_sweep_context",
    "get_wandb_sweep_id",
    "remove_downloaded_logs",
    "run_agent",
    "run_agent_work",
    "run_parallel_agents",
    "run_parallel_agents_sync",
    "run_trial",
    "validate_sweep_config",
    "wandb_sweep",
    "wandb_sweep_config",
]
