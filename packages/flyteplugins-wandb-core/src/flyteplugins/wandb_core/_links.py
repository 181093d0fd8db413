"""Which W&B pages a task's links point at, derived from the run plan.

The URLs of those pages follow the installed wandb client's rules (hosts, web app, quoting), so
they are built by the plugin, which knows the client; core only says which runs and groups exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._modes import RankScope, RunMode, parse_rank_scope, parse_run_mode
from ._plan import plan, plan_job


@dataclass(frozen=True)
class LinkTarget:
    """One W&B page: a run or a group of runs; ``worker`` is set for per-worker links."""

    kind: Literal["run", "group"]
    id: str
    worker: int | None = None


def parse_nnodes(value: int | str) -> int:
    """The node count to render links for; an elastic range such as ``"1:4"`` gives its maximum."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str):
        text = value.strip()
        lower, sep, upper = text.rpartition(":")
        try:
            n = int(upper)
            low = int(lower) if sep else n
        except ValueError:
            raise ValueError(f"invalid nnodes {value!r}: expected an int or 'min:max'") from None
        if sep and (low < 1 or low > n):
            raise ValueError(f"invalid nnodes {value!r}: in 'min:max', min must be >= 1 and <= max")
    else:
        raise ValueError(f"invalid nnodes {value!r}: expected an int or 'min:max'")
    if n < 1:
        raise ValueError(f"invalid nnodes {value!r}: must be >= 1")
    return n


def link_targets(
    run_mode: RunMode | str,
    rank_scope: RankScope | str,
    base: str,
    *,
    nnodes: int | str | None = None,
    nproc_per_node: int = 1,
    parent_id: str | None = None,
    user_id: str | None = None,
) -> list[LinkTarget]:
    """The pages a task's links point at.

    ``nnodes=None`` means a plain (non-distributed) task: one link to its run. For a distributed
    task the plan of every process is computed and the distinct runs that log (or, for ``new``
    mode, the distinct groups) become the targets, one per worker in worker scope.
    """
    mode = parse_run_mode(run_mode)
    scope = parse_rank_scope(rank_scope)
    if nnodes is None:
        p = plan(mode, scope, None, base, parent_id=parent_id, user_id=user_id)
        assert p.run_id is not None
        return [LinkTarget("run", p.run_id)]
    jobs = plan_job(
        mode,
        scope,
        parse_nnodes(nnodes),
        nproc_per_node,
        base,
        parent_id=parent_id,
        user_id=user_id,
    )
    kind: Literal["run", "group"] = "group" if mode == "new" else "run"
    seen: dict[str, int] = {}
    for topology, p in jobs:
        key = p.group if kind == "group" else p.run_id
        if p.logs and key is not None and key not in seen:
            seen[key] = topology.worker_index
    per_worker = len(seen) > 1
    return [LinkTarget(kind, key, worker if per_worker else None) for key, worker in seen.items()]
