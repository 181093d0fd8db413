"""The plan command line: `flyteplugins-wandb-plan [options]` prints the plan of a task.

Every value it prints comes from the functions the plugin runs: :func:`clean_base` for
``--base`` (what :func:`make_base` does with a Flyte run's names), :func:`parse_nnodes` for an
Elastic range, :func:`plan` / :func:`plan_job` for the rows and :func:`link_targets` for the links.
Without ``--nnodes`` or ``--nproc-per-node`` (or with ``--plain``) the task is a plain,
single-process one, planned with ``topology=None`` as the plugin does when ``RANK`` is unset.

``plan`` may still precede the options (``flyteplugins-wandb-plan plan --nnodes 2``, or
``python -m flyteplugins.wandb_core plan ...``): older instructions spell it that way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._ids import clean_base
from ._links import link_targets, parse_nnodes
from ._modes import DEFAULT_RANK_SCOPE, DEFAULT_RUN_MODE, RANK_SCOPES, RUN_MODES
from ._plan import RunPlan, plan, plan_job
from ._topology import Topology

PROG = "flyteplugins-wandb-plan"
SUBCOMMAND = "plan"
DEFAULT_BASE = "{run_name}-{action_name}"
"""Shown when ``--base`` is not given: the pattern, printed as is (the real names are cleaned)."""

PLAIN_LABEL = "{action_name}"
"""The shared-mode label of a plain task joining its parent's run: the task's Flyte action name."""

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
    """``N`` or an Elastic range ``MIN:MAX``; the rows are planned for the maximum."""
    try:
        return text, parse_nnodes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Show which processes of a task start W&B runs, with which ids and groups,\n"
            "as the plugin plans them at run time. Without --nnodes/--nproc-per-node\n"
            "the task is a plain (single-process) one."
        ),
        epilog=(
            f"The word '{SUBCOMMAND}' may precede the options, as in earlier versions:\n"
            f"  {prog} {SUBCOMMAND} --nnodes 2"
        ),
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
        default=None,
        metavar="N|MIN:MAX",
        help="nodes (Elastic nnodes or clustered replicas); a range is shown for its maximum",
    )
    shape.add_argument(
        "--nproc-per-node", type=_positive, default=None, metavar="M", help="processes per node"
    )
    parser.add_argument("--run-mode", choices=RUN_MODES, default=DEFAULT_RUN_MODE)
    parser.add_argument("--rank-scope", choices=RANK_SCOPES, default=DEFAULT_RANK_SCOPE)
    parser.add_argument(
        "--base",
        default=None,
        help=f"the base id, {DEFAULT_BASE} (default: that pattern); made valid as the plugin does",
    )
    parser.add_argument("--id", dest="user_id", default=None, help="a user-supplied run id")
    parser.add_argument("--parent-id", default=None, help="run id published by a parent task")
    parser.add_argument(
        "--parent-in-process",
        action="store_true",
        help="plain task only: the parent's run is live in this process (Flyte local runs)",
    )
    parser.add_argument("--links", action="store_true", help="also print the link targets")
    return parser


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*header), line.format(*("-" * w for w in widths))]
    out.extend(line.format(*row) for row in rows)
    return "\n".join(s.rstrip() for s in out)


def row(topology: Topology | None, p: RunPlan) -> tuple[str, ...]:
    """One line of the table: a process's position and what it does with W&B."""
    position = (
        ("-", "-", "-")
        if topology is None
        else (str(topology.rank), str(topology.worker_index), str(topology.local_rank))
    )
    return (
        *position,
        "yes" if p.initializes else "no",
        p.run_id or "-",
        p.group or "-",
        p.role + (f" ({p.label})" if p.label else ""),
    )


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == [SUBCOMMAND]:
        args_in = args_in[1:]
    parser = _parser(prog)
    args = parser.parse_args(args_in)
    distributed = args.nnodes is not None or args.nproc_per_node is not None
    if args.plain and distributed:
        parser.error("--plain is a task that is not distributed: drop --nnodes/--nproc-per-node")
    if args.parent_in_process and distributed:
        parser.error(
            "--parent-in-process applies to a plain task only (no --nnodes/--nproc-per-node)"
        )
    nnodes_text, nnodes = args.nnodes or ("1", 1)
    nproc = args.nproc_per_node or 1
    try:
        base = DEFAULT_BASE if args.base is None else clean_base(args.base)
        if distributed:
            jobs: list[tuple[Topology | None, RunPlan]] = list(
                plan_job(
                    args.run_mode,
                    args.rank_scope,
                    nnodes,
                    nproc,
                    base,
                    parent_id=args.parent_id,
                    user_id=args.user_id,
                )
            )
        else:
            single = plan(
                args.run_mode,
                args.rank_scope,
                None,
                base,
                parent_id=args.parent_id,
                user_id=args.user_id,
                parent_in_process=args.parent_in_process,
                label=PLAIN_LABEL,
            )
            jobs = [(None, single)]
        targets = link_targets(
            args.run_mode,
            args.rank_scope,
            base,
            nnodes=nnodes if distributed else None,
            nproc_per_node=nproc,
            parent_id=args.parent_id,
            user_id=args.user_id,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(_table(HEADER, [row(t, p) for t, p in jobs]))
    runs = {p.run_id for _, p in jobs if p.logs}
    groups = {p.group for _, p in jobs if p.group}
    shape = f"{nnodes} node(s) x {nproc} process(es)" if distributed else "plain task"
    print(f"\n{shape}: {len(runs)} W&B run(s), {len(groups)} group(s)")
    if args.base is not None and base != args.base:
        print(
            f"note: --base {args.base!r} is used as {base!r}, made valid for W&B as the plugin does"
        )
    if distributed and nnodes_text.strip() != str(nnodes):
        print(f"note: Elastic nnodes {nnodes_text!r} is shown for its maximum, {nnodes} node(s)")
    if args.links:
        for target in targets:
            where = f" (worker {target.worker})" if target.worker is not None else ""
            print(f"link: {target.kind} {target.id}{where}")
    return 0
