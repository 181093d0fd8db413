"""The bottom layer: the sweep of the running ``@wandb_sweep`` call (a context variable: concurrent
tasks each see their own) and the local sweeps this process controls."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SweepRef:
    """A sweep that exists: its id and where it lives (``local`` = the offline controller)."""

    id: str
    project: str | None = None
    entity: str | None = None
    host: str | None = None
    local: bool = False


current: ContextVar[SweepRef | None] = ContextVar("flyteplugins_wandb_sweep", default=None)

local_sweeps: dict[str, Any] = {}  # the local sweeps (LocalSweep) this process controls, by id
local_sweeps_lock = threading.Lock()
