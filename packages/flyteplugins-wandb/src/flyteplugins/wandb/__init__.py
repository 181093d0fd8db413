"""Weights & Biases for Flyte 2.

``@wandb_init`` starts a W&B run around a task or function, ``get_wandb_run()`` returns it,
``wandb_config(...)`` carries settings to child tasks through Flyte's ``custom_context`` and
``Wandb`` links a task to its run. Importing this package does not import ``wandb``. The sweeps
API and the log download are re-exported from ``flyteplugins.wandb_sweeps`` where the
``[sweeps]`` extra is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from flyteplugins.wandb_core import RankScope, RunMode

from .__about__ import __version__
from ._call import WandbLinkIncomplete
from ._decorator import get_distributed_info, get_wandb_run_dir, wandb_init
from ._globals import WandbGlobalsUnavailable
from ._link import Wandb
from ._settings import WandbIdShortened
from ._state import get_wandb_run

if TYPE_CHECKING:
    from ._artifacts import (
        WandbArtifactFailed,
        WandbCloudExtraMissing,
        apply_recorded_uses,
        log_model_checkpoint,
    )
    from ._config import get_wandb_context, wandb_config
    from ._distributed import WandbStrayRank
    from ._failures import (
        WandbApiKeyMissing,
        WandbFinishFailed,
        WandbOfflineFallback,
        WandbServerUnreachable,
        WandbUploadIncomplete,
    )
    from ._report import WandbReportFailed, report_sweep
    from ._rewind import WandbRewindError, rewind_to
    from ._sync import WandbOfflineRunNotSaved, WandbSyncFailed, sync_wandb, wandb_sync_task
    from ._user_init import WandbInitInTaskWarning

# Modules a plain decorated task never needs, imported at the first use of one of their names.
_LAZY = {
    name: module
    for module, names in (
        ("_artifacts", "WandbArtifactFailed WandbCloudExtraMissing apply_recorded_uses"),
        ("_artifacts", "log_model_checkpoint"),
        ("_config", "get_wandb_context wandb_config"),
        ("_distributed", "WandbStrayRank"),
        ("_failures", "WandbApiKeyMissing WandbOfflineFallback WandbServerUnreachable"),
        ("_failures", "WandbUploadIncomplete WandbFinishFailed"),
        ("_report", "WandbReportFailed report_sweep"),
        ("_rewind", "WandbRewindError rewind_to"),
        ("_sync", "WandbOfflineRunNotSaved WandbSyncFailed sync_wandb wandb_sync_task"),
        ("_user_init", "WandbInitInTaskWarning"),
    )
    for name in names.split()
}

_SWEEPS_NAMES = (
    *("wandb_sweep", "wandb_sweep_config", "get_wandb_sweep_id", "get_wandb_sweep_context"),
    *("WandbSweep", "download_wandb_run_dir", "download_wandb_sweep_dirs"),
    *("download_wandb_run_logs", "download_wandb_sweep_logs", "remove_downloaded_logs"),
)

__all__ = [
    "RankScope",
    "RunMode",
    "Wandb",
    "WandbApiKeyMissing",
    "WandbArtifactFailed",
    "WandbCloudExtraMissing",
    "WandbFinishFailed",
    "WandbGlobalsUnavailable",
    "WandbIdShortened",
    "WandbInitInTaskWarning",
    "WandbLinkIncomplete",
    "WandbOfflineFallback",
    "WandbOfflineRunNotSaved",
    "WandbReportFailed",
    "WandbRewindError",
    "WandbServerUnreachable",
    "WandbStrayRank",
    "WandbSyncFailed",
    "WandbUploadIncomplete",
    "__version__",
    "apply_recorded_uses",
    "get_distributed_info",
    "get_wandb_context",
    "get_wandb_run",
    "get_wandb_run_dir",
    "log_model_checkpoint",
    "report_sweep",
    "rewind_to",
    "sync_wandb",
    "wandb_config",
    "wandb_init",
    "wandb_sync_task",
]


def _sweeps_installed() -> bool:
    try:
        return importlib.util.find_spec("flyteplugins.wandb_sweeps") is not None
    except (ImportError, ValueError):
        return False


# The sweeps names (2.x had them here) are listed only where the sweeps distribution is
# installed, so that `from flyteplugins.wandb import *` works without it.
if _sweeps_installed():
    __all__ += _SWEEPS_NAMES


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name in _SWEEPS_NAMES:
        try:
            # by name: the plugin depends on no module of the sweeps distribution
            sweeps = importlib.import_module("flyteplugins.wandb_sweeps")
        except ImportError as exc:
            raise ImportError(
                f"flyteplugins.wandb.{name} comes from the sweeps distribution, which is not "
                'installed: pip install "flyteplugins-wandb[sweeps]"'
            ) from exc
        try:
            value = getattr(sweeps, name)
        except AttributeError as exc:
            raise ImportError(
                f"the installed flyteplugins-wandb-sweeps does not provide {name}; upgrade it: "
                'pip install -U "flyteplugins-wandb[sweeps]"'
            ) from exc
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
