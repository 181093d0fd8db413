"""``flyteplugins-wandb-plan [options]``: the plan of a task, one row per process, computed by the
functions the plugin runs (``make_base``'s rule for ``--base``, ``plan``, ``link_targets``).

Without ``--nnodes``/``--nproc-per-node`` (or with ``--plain``) the task is a plain one, planned
with ``topology=None``. The word ``plan`` may precede the options, as earlier versions required.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._ids import fit, sanitize
from ._plan import (
    DEFAULT_RANK_SCOPE,
    DEFAULT_RUN_MODE,
    RANK_SCOPES,
    RUN_MODES,
    RunPlan,
    link_targets,
    parse_nnodes,
    plan,
    plan_job,
)
from ._topology import Topology

HEADER = ("rank", "worker", "local_rank", "initialises", "run id", "group", "role")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _nnodes(text: str) -> tuple[str, int]:
    try:
        return text, parse_nnodes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Show which processes of a task start W&B runs, with which ids and groups,\n"
        "as the plugin plans them at run time. Without --nnodes/--nproc-per-node\n"
        "the task is a plain (single-process) one.",
        epilog=f"The word 'plan' may precede the options, as in earlier versions:\n"
        f"  {prog} plan --nnodes 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shape = parser.add_argument_group("task shape")
    shape.add_argument(
        "--plain",
        action="store_true",
        help="a plain task, not distributed (the default without --nnodes/--nproc-per-node)",
    )
    shape.add_argument(
        "--nnodes",
        type=_nnodes,
        metavar="N|MIN:MAX",
        help="nodes (Elastic nnodes or clustered replicas); a range is shown for its maximum",
    )
    shape.add_argument("--nproc-per-node", type=_positive, metavar="M", help="processes per node")
    add = parser.add_argument
    add("--run-mode", choices=RUN_MODES, default=DEFAULT_RUN_MODE)
    add("--rank-scope", choices=RANK_SCOPES, default=DEFAULT_RANK_SCOPE)
    add(
        "--base",
        help="the base id, {run_name}-{action_name} (default: that pattern); made valid as the "
        "plugin does",
    )
    add("--id", dest="user_id", help="a user-supplied run id")
    add("--parent-id", help="run id published by a parent task")
    add(
        "--parent-in-process",
        action="store_true",
        help="plain task only: the parent's run is live in this process (Flyte local runs)",
    )
    add("--links", action="store_true", help="also print the link targets")
    return parser


def _row(t: Topology | None, p: RunPlan) -> tuple[str, ...]:
    where = ("-",) * 3 if t is None else (str(t.rank), str(t.worker_index), str(t.local_rank))
    role = p.role + (f" ({p.label})" if p.label else "")
    return (*where, "yes" if p.initializes else "no", p.run_id or "-", p.group or "-", role)


def main(argv: Sequence[str] | None = None, *, prog: str = "flyteplugins-wandb-plan") -> int:
    """Print the plan of the task that ``argv`` (default: ``sys.argv[1:]``) describes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(prog)
    args = parser.parse_args(argv[1:] if argv[:1] == ["plan"] else argv)
    distributed = args.nnodes is not None or args.nproc_per_node is not None
    if args.plain and distributed:
        parser.error("--plain is a task that is not distributed: drop --nnodes/--nproc-per-node")
    if args.parent_in_process and distributed:
        parser.error(
            "--parent-in-process applies to a plain task only (no --nnodes/--nproc-per-node)"
        )
    nnodes_text, nnodes = args.nnodes or ("1", 1)
    nproc = args.nproc_per_node or 1
    mode, scope = args.run_mode, args.rank_scope
    ids = {"parent_id": args.parent_id, "user_id": args.user_id}
    try:
        base = "{run_name}-{action_name}" if args.base is None else fit(sanitize(args.base))
        if distributed:
            jobs: list[tuple[Topology | None, RunPlan]] = list(
                plan_job(mode, scope, nnodes, nproc, base, **ids)
            )
        else:
            in_process = args.parent_in_process
            label = "{action_name}"  # a plain task joining its parent's run: its action's name
            single = plan(mode, scope, None, base, parent_in_process=in_process, label=label, **ids)
            jobs = [(None, single)]
        targets = link_targets(
            mode, scope, base, nnodes=nnodes if distributed else None, nproc_per_node=nproc, **ids
        )
    except ValueError as exc:
        parser.error(str(exc))
    rows = [HEADER, *(_row(t, p) for t, p in jobs)]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    rows.insert(1, tuple("-" * w for w in widths))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    runs = {p.run_id for _, p in jobs if p.logs}
    groups = {p.group for _, p in jobs if p.group}
    shape = f"{nnodes} node(s) x {nproc} process(es)" if distributed else "plain task"
    print(f"\n{shape}: {len(runs)} W&B run(s), {len(groups)} group(s)")
    if args.base is not None and base != args.base:
        made_valid = "made valid for W&B as the plugin does"
        print(f"note: --base {args.base!r} is used as {base!r}, {made_valid}")
    if distributed and nnodes_text.strip() != str(nnodes):
        print(f"note: Elastic nnodes {nnodes_text!r} is shown for its maximum, {nnodes} node(s)")
    for target in targets if args.links else []:
        worker = "" if target.worker is None else f" (worker {target.worker})"
        print(f"link: {target.kind} {target.id}{worker}")
    return 0
