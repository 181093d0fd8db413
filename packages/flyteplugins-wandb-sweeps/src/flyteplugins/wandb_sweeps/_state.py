"""The bottom layer: what one call and this process know about sweeps.

``current`` holds the sweep of the running ``@wandb_sweep`` call (a context variable, so
concurrent tasks in one process each see their own); ``local_sweeps`` holds the local sweeps this
process controls, by id, from their creation until they are closed. Nothing here imports another
module of this distribution.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SweepRef:
    """A sweep that exists: its id and where it lives (``local`` = the offline controller)."""

    id: str
    project: str | None = None
    entity: str | None = None
    host: str | None = None
    local: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


current: ContextVar[SweepRef | None] = ContextVar("flyteplugins_wandb_sweep", default=None)

local_sweeps: dict[str, Any] = {}
"""Local sweeps (``LocalSweep``) this process controls, by id."""
local_sweeps_lock = threading.Lock()
