"""The run plan, the one place that decides which processes start W&B runs, with which ids,
groups and shared-mode roles, and who finishes them; and the pages a task's links point at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeVar, get_args

from ._ids import check_user_id
from ._topology import Topology

RunMode = Literal["auto", "new", "shared"]
"""How a task's W&B run relates to its parent's: reuse it, always create one, or join it."""
RankScope = Literal["global", "worker"]
"""Whether a distributed job is one unit for W&B (global) or one unit per worker (worker)."""
Role = Literal["owner", "primary", "secondary", "reuse", "silent"]
"""What a process is to its W&B run (:attr:`RunPlan.role`)."""

RUN_MODES: Final[tuple[RunMode, ...]] = get_args(RunMode)
RANK_SCOPES: Final[tuple[RankScope, ...]] = get_args(RankScope)
DEFAULT_RUN_MODE: Final[RunMode] = "auto"
DEFAULT_RANK_SCOPE: Final[RankScope] = "global"

_Choice = TypeVar("_Choice", bound=str)


def _parse(value: object, allowed: tuple[_Choice, ...], what: str) -> _Choice:
    for choice in allowed:
        if isinstance(value, str) and value == choice:
            return choice
    choices = ", ".join(map(repr, allowed))
    raise ValueError(
        f"invalid {what} {value!r} ({type(value).__name__}); expected one of {choices}"
    )


def parse_run_mode(value: object) -> RunMode:
    """Return ``value`` as a :data:`RunMode`; ``ValueError`` names it and the choices."""
    return _parse(value, RUN_MODES, "run_mode")


def parse_rank_scope(value: object) -> RankScope:
    """Return ``value`` as a :data:`RankScope`; ``ValueError`` names it and the choices."""
    return _parse(value, RANK_SCOPES, "rank_scope")


@dataclass(frozen=True)
class RunPlan:
    """What one process does with W&B: it ``initializes`` a run (``wandb.init``) or
    ``reuses_parent`` (the parent's run, live in this process); a ``shared``-mode writer, told
    apart by its ``label``, may be the ``primary``; only the process that ``finishes`` the run
    marks it finished or failed (every writer still calls ``finish`` to flush)."""

    run_mode: RunMode
    rank_scope: RankScope
    initializes: bool = False
    reuses_parent: bool = False
    run_id: str | None = None
    group: str | None = None
    shared: bool = False
    primary: bool = False
    label: str | None = None
    finishes: bool = False

    @property
    def logs(self) -> bool:
        """Whether ``get_wandb_run()`` returns a run in this process."""
        return self.initializes or self.reuses_parent

    @property
    def joins_existing(self) -> bool:
        """Whether the run is owned by another process (this one writes as a secondary)."""
        return self.initializes and self.shared and not self.primary

    @property
    def role(self) -> Role:
        if not self.initializes:
            return "reuse" if self.reuses_parent else "silent"
        if not self.shared:
            return "owner"
        return "primary" if self.primary else "secondary"


def plan(
    run_mode: RunMode | str,
    rank_scope: RankScope | str,
    topology: Topology | None,
    base: str,
    *,
    parent_id: str | None = None,
    user_id: str | None = None,
    parent_in_process: bool = False,
    label: str | None = None,
) -> RunPlan:
    """Plan W&B for one process (``topology=None``: a plain task's) by the tables of docs/plan.md.
    ``user_id`` replaces ``base`` and wins over ``parent_id`` (the run an enclosing task published,
    live here if ``parent_in_process``); ``label`` names a plain process joining another's run."""
    mode, scope = parse_run_mode(run_mode), parse_rank_scope(rank_scope)
    own_id = None if user_id is None else check_user_id(user_id)
    root, join_id = own_id or base, parent_id if own_id is None else None

    def owner(run_id: str, group: str | None = None) -> RunPlan:  # the run's only writer
        return RunPlan(mode, scope, True, run_id=run_id, group=group, primary=True, finishes=True)

    def writer(run_id: str, lead: bool, label: str) -> RunPlan:  # one of a shared run's
        return RunPlan(
            mode, scope, True, run_id=run_id, shared=True, primary=lead, label=label, finishes=lead
        )

    if topology is None:
        if mode == "new" or join_id is None:
            return owner(root)
        if parent_in_process:
            return RunPlan(mode, scope, reuses_parent=True, run_id=join_id)
        return writer(join_id, False, label or "child")
    t = topology
    by_worker = scope == "worker" and not t.single_node
    suffix = f"-worker-{t.worker_index}" if by_worker else ""
    rank = t.local_rank if by_worker else t.rank  # within the unit that shares a run
    if mode == "new":
        return owner(f"{root}{suffix}-rank-{rank}", root + suffix)
    target = (join_id or root) + suffix  # a child's per-worker runs are named after its parent
    joins = join_id is not None and not by_worker
    if mode == "auto" and rank != 0:
        return RunPlan(mode, scope)
    if mode == "auto" and not joins:
        return owner(target)
    # shared, or auto joining the parent's run: every rank writes to one run (per worker)
    rank_label = f"worker-{t.worker_index}-rank-{rank}" if by_worker else f"rank-{rank}"
    return writer(target, rank == 0 and not joins, rank_label)


def plan_job(
    run_mode: RunMode | str,
    rank_scope: RankScope | str,
    nnodes: int,
    nproc_per_node: int,
    base: str,
    *,
    parent_id: str | None = None,
    user_id: str | None = None,
) -> list[tuple[Topology, RunPlan]]:
    """The plan of every process of a job, in rank order."""
    return [
        (t, plan(run_mode, rank_scope, t, base, parent_id=parent_id, user_id=user_id))
        for t in Topology.enumerate(nnodes, nproc_per_node)
    ]


@dataclass(frozen=True)
class LinkTarget:
    """One W&B page: a run or a group of runs; ``worker`` is set for per-worker links."""

    kind: Literal["run", "group"]
    id: str
    worker: int | None = None


def parse_nnodes(value: int | str) -> int:
    """The node count to render links for; an elastic range such as ``"1:4"`` gives its maximum."""
    invalid = f"invalid nnodes {value!r}: "
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(invalid + "expected an int or 'min:max'")
    low, sep, high = str(value).strip().rpartition(":")
    try:
        n, least = int(high), int(low) if sep else 1
    except ValueError:
        raise ValueError(invalid + "expected an int or 'min:max'") from None
    if not 1 <= least <= n:
        rule = "in 'min:max', min must be >= 1 and <= max" if sep else "must be >= 1"
        raise ValueError(invalid + rule)
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
    """The pages a task's links point at: a plain task's run (``nnodes=None``), else the distinct
    runs that log (in ``new`` mode their groups), one per worker in worker scope."""
    mode, scope = parse_run_mode(run_mode), parse_rank_scope(rank_scope)
    if nnodes is None:
        run_id = plan(mode, scope, None, base, parent_id=parent_id, user_id=user_id).run_id
        assert run_id is not None
        return [LinkTarget("run", run_id)]
    kind: Literal["run", "group"] = "group" if mode == "new" else "run"
    seen: dict[str, int] = {}
    n = parse_nnodes(nnodes)
    jobs = plan_job(mode, scope, n, nproc_per_node, base, parent_id=parent_id, user_id=user_id)
    for t, p in jobs:
        key = p.group if kind == "group" else p.run_id
        if p.logs and key is not None:
            seen.setdefault(key, t.worker_index)
    per_worker = len(seen) > 1
    return [LinkTarget(kind, key, worker if per_worker else None) for key, worker in seen.items()]
