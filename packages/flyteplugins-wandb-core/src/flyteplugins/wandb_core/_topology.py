"""Where this process sits in a distributed job, read from an environment mapping passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict, cast


class DistributedInfo(TypedDict):
    """The dictionary returned by ``get_distributed_info()``."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    worker_index: int
    num_workers: int


class TopologyError(ValueError):
    """A distributed-training variable is missing, malformed or inconsistent. When only one of
    ``RANK`` and ``WORLD_SIZE`` is set, ``present`` names it and ``missing`` the other."""

    def __init__(self, msg: str, *, present: str | None = None, missing: str | None = None) -> None:
        super().__init__(msg)
        self.present, self.missing = present, missing


def _read_int(environ: Mapping[str, str], *names: str, minimum: int = 0) -> tuple[str, int] | None:
    for name in names:  # the first one set to a non-blank value
        if raw := environ.get(name, "").strip():
            try:
                value = int(raw)
            except ValueError:
                raise TopologyError(f"{name}={environ[name]!r} is not an integer") from None
            if value < minimum:
                raise TopologyError(f"{name}={environ[name]!r} must be >= {minimum}")
            return name, value
    return None


@dataclass(frozen=True)
class Topology:
    """The position of one process in a distributed job; ``worker_index`` is its node."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    worker_index: int
    restart_count: int = 0

    def __post_init__(self) -> None:
        w, lw, r, lr = self.world_size, self.local_world_size, self.rank, self.local_rank
        if not 0 <= r < w:
            raise TopologyError(f"RANK={r} must be in [0, WORLD_SIZE={w})")
        if not 0 <= lr < lw:
            raise TopologyError(f"LOCAL_RANK={lr} must be in [0, LOCAL_WORLD_SIZE={lw})")
        if w % lw:
            raise TopologyError(f"WORLD_SIZE={w} is not a multiple of LOCAL_WORLD_SIZE={lw}")
        if not 0 <= self.worker_index < w // lw:
            raise TopologyError(
                f"GROUP_RANK={self.worker_index} must be in [0, number of workers={w // lw})"
            )

    @property
    def num_workers(self) -> int:
        return self.world_size // self.local_world_size

    @property
    def single_node(self) -> bool:
        return self.num_workers == 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Topology | None:
        """Read ``environ``; ``None`` when neither ``RANK`` nor ``WORLD_SIZE`` is set. Fallbacks:
        ``LOCAL_WORLD_SIZE``: ``NPROC_PER_NODE``, ``WORLD_SIZE // NNODES`` (or ``NUM_NODES``), one
        node; ``LOCAL_RANK``: ``RANK % LOCAL_WORLD_SIZE``; ``GROUP_RANK``: ``NODE_RANK``, ``RANK //
        LOCAL_WORLD_SIZE``."""
        rank = _read_int(environ, "RANK")
        world = _read_int(environ, "WORLD_SIZE", minimum=1)
        if rank is None or world is None:
            lone = rank or world
            if lone is None:
                return None
            name, value = lone
            missing = "WORLD_SIZE" if world is None else "RANK"
            msg = f"{name}={value} is set but {missing} is not; a distributed process needs both"
            raise TopologyError(msg, present=name, missing=missing)
        r, w = rank[1], world[1]
        local_world = _read_int(environ, "LOCAL_WORLD_SIZE", "NPROC_PER_NODE", minimum=1)
        nodes = None if local_world else _read_int(environ, "NNODES", "NUM_NODES", minimum=1)
        if nodes and w % nodes[1]:
            raise TopologyError(f"WORLD_SIZE={w} is not a multiple of {nodes[0]}={nodes[1]}")
        lw = local_world[1] if local_world else w // nodes[1] if nodes else w
        local_rank = _read_int(environ, "LOCAL_RANK")
        group = _read_int(environ, "GROUP_RANK", "NODE_RANK")
        restart = _read_int(environ, "TORCHELASTIC_RESTART_COUNT")
        lr = local_rank[1] if local_rank else r % lw
        node = group[1] if group else r // lw
        return cls(r, w, lr, lw, node, restart[1] if restart else 0)

    def info(self) -> DistributedInfo:
        """The rank dictionary that ``get_distributed_info()`` returns."""
        return cast(
            "DistributedInfo", {k: getattr(self, k) for k in DistributedInfo.__annotations__}
        )

    @classmethod
    def enumerate(cls, nnodes: int, nproc_per_node: int) -> list[Topology]:
        """Every process of a job with ``nnodes`` nodes of ``nproc_per_node`` processes each."""
        if nnodes < 1 or nproc_per_node < 1:
            raise TopologyError(f"nnodes={nnodes} and nproc_per_node={nproc_per_node} must be >= 1")
        return [
            cls(node * nproc_per_node + local, nnodes * nproc_per_node, local, nproc_per_node, node)
            for node in range(nnodes)
            for local in range(nproc_per_node)
        ]
