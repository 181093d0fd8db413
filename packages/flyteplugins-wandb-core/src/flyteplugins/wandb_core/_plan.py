"""The run plan: for one process, what W&B should do.

This is the only place that decides which ranks start a run, each run's id and group, the
shared-mode role and who marks the run finished. The plugin executes the plan and the links are
computed from it, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._ids import check_user_id
from ._modes import RankScope, RunMode, parse_rank_scope, parse_run_mode
from ._topology import Topology

Role = Literal["owner", "primary", "secondary", "reuse", "silent"]
"""What a process is to its W&B run (:attr:`RunPlan.role`)."""


@dataclass(frozen=True)
class RunPlan:
    """What one process does with W&B.

    * ``initializes``: the process calls ``wandb.init`` (with ``run_id`` and ``group``).
    * ``reuses_parent``: the process logs to the parent's run object that is already live in this
      same process; it neither initialises nor finishes anything.
    * ``shared``: the process uses W&B's shared-mode settings (several writers, one run).
    * ``primary``: in shared mode, the writer whose finish marks the run's final state.
    * ``label``: the shared-mode label that tells writers apart in the W&B UI.
    * ``finishes``: the process's finish marks the run finished/failed (the sole owner, or the
      shared-mode primary). Every process that initialises still calls ``finish`` to flush.
    """

    run_mode: RunMode
    rank_scope: RankScope
    initializes: bool
    reuses_parent: bool
    run_id: str | None
    group: str | None
    shared: bool
    primary: bool
    label: str | None
    finishes: bool

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
        if self.reuses_parent:
            return "reuse"
        if not self.initializes:
            return "silent"
        if not self.shared:
            return "owner"
        return "primary" if self.primary else "secondary"


def _silent(mode: RunMode, scope: RankScope) -> RunPlan:
    return RunPlan(mode, scope, False, False, None, None, False, False, None, False)


def _owner(mode: RunMode, scope: RankScope, run_id: str, group: str | None = None) -> RunPlan:
    return RunPlan(mode, scope, True, False, run_id, group, False, True, None, True)


def _writer(
    mode: RunMode, scope: RankScope, run_id: str, *, primary: bool, label: str | None
) -> RunPlan:
    return RunPlan(mode, scope, True, False, run_id, None, True, primary, label, primary)


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
    """Plan W&B for one process.

    ``base`` is ``{run_name}-{action_name}`` (see :func:`make_base`). ``parent_id`` is the run
    id an enclosing task published, ``parent_in_process`` whether that run object is live in this
    process, ``user_id`` an id the user chose (it replaces ``base`` and wins over the parent's
    run), ``label`` the shared-mode label of a single (non-distributed) process joining a run
    that another process owns.

    Single process: ``new`` creates ``{base}``; ``auto`` and ``shared`` reuse the parent's run
    (in this process) or join it as a shared-mode secondary (from another process), and create
    ``{base}`` when there is no parent (``shared`` without a parent behaves as ``auto``).

    Distributed: the specification's tables. On a single node ``worker`` scope gives the same ids
    as ``global`` scope.
    """
    mode = parse_run_mode(run_mode)
    scope = parse_rank_scope(rank_scope)
    own_id = check_user_id(user_id) if user_id is not None else None
    root = own_id or base
    join_id = parent_id if own_id is None else None

    if topology is None:
        if mode == "new" or join_id is None:
            return _owner(mode, scope, root)
        if parent_in_process:
            return RunPlan(mode, scope, False, True, join_id, None, False, False, None, False)
        return _writer(mode, scope, join_id, primary=False, label=label or "child")

    t = topology
    by_worker = scope == "worker" and not t.single_node
    if mode == "new":
        if by_worker:
            group = f"{root}-worker-{t.worker_index}"
            return _owner(mode, scope, f"{group}-rank-{t.local_rank}", group)
        return _owner(mode, scope, f"{root}-rank-{t.rank}", root)

    target = join_id or root
    if by_worker:
        target = f"{target}-worker-{t.worker_index}"
    joins = target == join_id
    lead = t.local_rank == 0 if by_worker else t.rank == 0
    rank_label = f"worker-{t.worker_index}-rank-{t.local_rank}" if by_worker else f"rank-{t.rank}"

    if mode == "auto":
        if not lead:
            return _silent(mode, scope)
        if joins:
            return _writer(mode, scope, target, primary=False, label=rank_label)
        return _owner(mode, scope, target)

    # shared: every rank writes to one run (per worker in worker scope)
    return _writer(mode, scope, target, primary=lead and not joins, label=rank_label)


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
        (
            t,
            plan(run_mode, rank_scope, t, base, parent_id=parent_id, user_id=user_id),
        )
        for t in Topology.enumerate(nnodes, nproc_per_node)
    ]
