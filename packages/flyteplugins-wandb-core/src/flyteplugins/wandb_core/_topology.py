"""Where this process sits in a distributed job, read from an environment mapping.

The mapping is passed in (normally ``os.environ``); nothing here reads the process environment,
so every rule is testable with plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict


class DistributedInfo(TypedDict):
    """The dictionary returned by ``get_distributed_info()``."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    worker_index: int
    num_workers: int


class TopologyError(ValueError):
    """A distributed-training environment variable is missing, malformed or inconsistent.

    When only one of ``RANK`` and ``WORLD_SIZE`` is set, ``present`` names the one that is and
    ``missing`` the other (both ``None`` for every other error): a caller that knows the process
    is not part of a distributed job may then treat the lone variable as a stray one.
    """

    present: str | None
    missing: str | None

    def __init__(
        self, message: str, *, present: str | None = None, missing: str | None = None
    ) -> None:
        super().__init__(message)
        self.present = present
        self.missing = missing


# Variables that torchrun / torch.distributed.elastic export, then the names Flyte's clustered
# TorchRun environments and plain launchers use, read only when the first are absent.
_RANK_VARS = ("RANK",)
_WORLD_VARS = ("WORLD_SIZE",)
_LOCAL_RANK_VARS = ("LOCAL_RANK",)
_LOCAL_WORLD_VARS = ("LOCAL_WORLD_SIZE", "NPROC_PER_NODE")
_GROUP_RANK_VARS = ("GROUP_RANK", "NODE_RANK")
_NNODES_VARS = ("NNODES", "NUM_NODES")
_RESTART_VARS = ("TORCHELASTIC_RESTART_COUNT",)


def _read_int(
    environ: Mapping[str, str], names: tuple[str, ...], *, minimum: int = 0
) -> tuple[str, int] | None:
    for name in names:
        raw = environ.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            value = int(raw.strip())
        except ValueError:
            raise TopologyError(f"{name}={raw!r} is not an integer") from None
        if value < minimum:
            raise TopologyError(f"{name}={raw!r} must be >= {minimum}")
        return name, value
    return None


@dataclass(frozen=True)
class Topology:
    """The position of one process in a distributed job.

    ``worker_index`` is the node (torchrun "group") this process runs on and ``num_workers`` the
    number of nodes. A job with one node is ``single_node``.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    worker_index: int
    restart_count: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise TopologyError(f"WORLD_SIZE={self.world_size} must be >= 1")
        if self.local_world_size < 1:
            raise TopologyError(f"LOCAL_WORLD_SIZE={self.local_world_size} must be >= 1")
        if not 0 <= self.rank < self.world_size:
            raise TopologyError(f"RANK={self.rank} must be in [0, WORLD_SIZE={self.world_size})")
        if not 0 <= self.local_rank < self.local_world_size:
            raise TopologyError(
                f"LOCAL_RANK={self.local_rank} must be in "
                f"[0, LOCAL_WORLD_SIZE={self.local_world_size})"
            )
        if self.world_size % self.local_world_size != 0:
            raise TopologyError(
                f"WORLD_SIZE={self.world_size} is not a multiple of "
                f"LOCAL_WORLD_SIZE={self.local_world_size}"
            )
        if not 0 <= self.worker_index < self.num_workers:
            raise TopologyError(
                f"GROUP_RANK={self.worker_index} must be in [0, number of workers="
                f"{self.num_workers})"
            )
        if self.restart_count < 0:
            raise TopologyError(f"TORCHELASTIC_RESTART_COUNT={self.restart_count} must be >= 0")

    @property
    def num_workers(self) -> int:
        return self.world_size // self.local_world_size

    @property
    def single_node(self) -> bool:
        return self.num_workers == 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Topology | None:
        """Read the topology from ``environ``; ``None`` when the process is not distributed.

        A process is distributed when ``RANK`` and ``WORLD_SIZE`` are both set. Fallbacks:

        * ``LOCAL_WORLD_SIZE`` missing: ``NPROC_PER_NODE``; else ``WORLD_SIZE // NNODES`` when
          ``NNODES`` is set; else the whole job is assumed to run on one node
          (``LOCAL_WORLD_SIZE = WORLD_SIZE``).
        * ``LOCAL_RANK`` missing: ``RANK % LOCAL_WORLD_SIZE``.
        * ``GROUP_RANK`` missing: ``NODE_RANK``; else ``RANK // LOCAL_WORLD_SIZE``.
        """
        rank = _read_int(environ, _RANK_VARS)
        world = _read_int(environ, _WORLD_VARS, minimum=1)
        if rank is None and world is None:
            return None
        if rank is None or world is None:
            missing = "RANK" if rank is None else "WORLD_SIZE"
            present = world if rank is None else rank
            assert present is not None
            raise TopologyError(
                f"{present[0]}={present[1]} is set but {missing} is not; "
                "a distributed process needs both",
                present=present[0],
                missing=missing,
            )
        world_size = world[1]
        local_world = _read_int(environ, _LOCAL_WORLD_VARS, minimum=1)
        if local_world is not None:
            local_world_size = local_world[1]
        else:
            nnodes = _read_int(environ, _NNODES_VARS, minimum=1)
            if nnodes is not None:
                if world_size % nnodes[1] != 0:
                    raise TopologyError(
                        f"WORLD_SIZE={world_size} is not a multiple of {nnodes[0]}={nnodes[1]}"
                    )
                local_world_size = world_size // nnodes[1]
            else:
                local_world_size = world_size
        local_rank_v = _read_int(environ, _LOCAL_RANK_VARS)
        local_rank = rank[1] % local_world_size if local_rank_v is None else local_rank_v[1]
        group = _read_int(environ, _GROUP_RANK_VARS)
        worker_index = rank[1] // local_world_size if group is None else group[1]
        restart = _read_int(environ, _RESTART_VARS)
        return cls(
            rank=rank[1],
            world_size=world_size,
            local_rank=local_rank,
            local_world_size=local_world_size,
            worker_index=worker_index,
            restart_count=0 if restart is None else restart[1],
        )

    def info(self) -> DistributedInfo:
        """The rank dictionary that ``get_distributed_info()`` returns."""
        return {
            "rank": self.rank,
            "local_rank": self.local_rank,
            "world_size": self.world_size,
            "local_world_size": self.local_world_size,
            "worker_index": self.worker_index,
            "num_workers": self.num_workers,
        }

    @classmethod
    def enumerate(cls, nnodes: int, nproc_per_node: int) -> list[Topology]:
        """Every process of a job with ``nnodes`` nodes of ``nproc_per_node`` processes each."""
        if nnodes < 1 or nproc_per_node < 1:
            raise TopologyError(
                f"nnodes={nnodes} and nproc_per_node={nproc_per_node} must both be >= 1"
            )
        world = nnodes * nproc_per_node
        return [
            cls(
                rank=node * nproc_per_node + local,
                world_size=world,
                local_rank=local,
                local_world_size=nproc_per_node,
                worker_index=node,
            )
            for node in range(nnodes)
            for local in range(nproc_per_node)
        ]
