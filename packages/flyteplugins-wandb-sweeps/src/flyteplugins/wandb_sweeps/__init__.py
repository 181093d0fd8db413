"""W&B sweeps for Flyte 2: ``@wandb_sweep``, agents as Flyte tasks, a local controller, logs.

Modules in layers, each importing only those below it: ``_decorator`` > ``download`` >
``_fetch`` > ``_parallel`` > ``_agent`` > ``_controller`` > ``_context`` > ``_validate`` >
``_state``. Importing this package imports neither ``wandb`` nor the engine.
"""

from __future__ import annotations

from .__about__ import __version__
from ._agent import SweepTrialsFailed, run_agent, run_trial
from ._context import (
    WandbSweepConfig,
    get_wandb_sweep_context,
    get_wandb_sweep_id,
    wandb_sweep_config,
)
from ._controller import LocalSweep, Trial, create_local_sweep
from ._decorator import WandbSweep, wandb_sweep
from ._fetch import DownloadError, DownloadResult, UnsafeFileName, default_download_dir
from ._parallel import run_agent_work, run_parallel_agents, run_parallel_agents_sync
from ._validate import MAX_PARALLEL_AGENTS, SweepConfigError, validate_sweep_config
from .download import (
    after_task,
    after_task_async,
    download_run,
    download_sweep,
    download_wandb_run_dir,
    download_wandb_run_logs,
    download_wandb_sweep_dirs,
    download_wandb_sweep_logs,
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
