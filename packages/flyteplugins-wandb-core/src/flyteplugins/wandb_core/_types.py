"""Runtime forms of core's typing-only names (imported on first use: ``typing`` is not free)."""

from __future__ import annotations

from typing import Literal, TypedDict

RunMode = Literal["auto", "new", "shared"]
RankScope = Literal["global", "worker"]
Role = Literal["owner", "primary", "secondary", "reuse", "silent"]


class DistributedInfo(TypedDict):
    """The dictionary returned by ``get_distributed_info()``."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    worker_index: int
    num_workers: int
