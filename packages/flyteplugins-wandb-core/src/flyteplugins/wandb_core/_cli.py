"""``python -m flyteplugins.wandb_core plan ...``: print the plan of a job as a table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._links import link_targets
from ._modes import RANK_SCOPES, RUN_MODES
from ._plan import plan_job


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flyteplugins.wandb_core",
        description="Show which ranks start W&B runs, with which ids, for a job shape.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="print one row per rank")
    p.add_argument("--nnodes", type=_positive, default=1, help="number of workers/nodes")
    p.add_argument("--nproc-per-node", type=_positive, default=1, help="processes per node")
    p.add_argument("--run-mode", choices=RUN_MODES, default="auto")
    p.add_argument("--rank-scope", choices=RANK_SCOPES, default="global")
    p.add_argument("--base", default="{run_name}-{action_name}", help="base id to show")
    p.add_argument("--id", dest="user_id", default=None, help="a user-supplied run id")
    p.add_argument("--parent-id", default=None, help="run id published by a parent task")
    p.add_argument("--links", action="store_true", help="also print the link targets")
    return parser


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*header), line.format(*("-" * w for w in widths))]
    out.extend(line.format(*row) for row in rows)
    return "\n".join(s.rstrip() for s in out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        jobs = plan_job(
            args.run_mode,
            args.rank_scope,
            args.nnodes,
            args.nproc_per_node,
            args.base,
            parent_id=args.parent_id,
            user_id=args.user_id,
        )
    except ValueError as exc:
        parser.error(str(exc))
    rows = [
        (
            str(t.rank),
            str(t.worker_index),
            str(t.local_rank),
            "yes" if p.initializes else "no",
            p.run_id or "-",
            p.group or "-",
            p.role + (f" ({p.label})" if p.label else ""),
        )
        for t, p in jobs
    ]
    header = ("rank", "worker", "local_rank", "initialises", "run id", "group", "role")
    print(_table(header, rows))
    runs = {p.run_id for _, p in jobs if p.logs}
    print(f"\n{len(runs)} W&B run(s), {len({p.group for _, p in jobs if p.group})} group(s)")
    if args.links:
        targets = link_targets(
            args.run_mode,
            args.rank_scope,
            args.base,
            nnodes=args.nnodes,
            nproc_per_node=args.nproc_per_node,
            parent_id=args.parent_id,
            user_id=args.user_id,
        )
        for target in targets:
            where = f" (worker {target.worker})" if target.worker is not None else ""
            print(f"link: {target.kind} {target.id}{where}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
