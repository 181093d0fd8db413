"""The run-mode, run-id and link tables and the plan CLI's output, generated from core's plan.

A page asks for a table with an HTML comment on a line of its own; the generated Markdown is
written into the page itself, up to the closing ``<!-- /plan -->``, so it reads on GitHub too:

* ``<!-- plan:modes -->``   who initialises W&B, how many runs and groups, per run_mode x rank_scope
* ``<!-- plan:ids -->``     the run id and group patterns of every distributed scenario
* ``<!-- plan:single -->``  single-process tasks: with and without a parent run
* ``<!-- plan:links -->``   which W&B pages a task's links point at
* ``<!-- plan:cli ARGS -->`` the output of ``flyteplugins-wandb-plan ARGS``

``python docs/hooks/plan_tables.py`` (``nox -s tables``) rewrites the regions of every page
under docs/; ``--check`` (run by ``nox -s lint``) only says which pages are stale and fails.
As an mkdocs hook it renders the same regions at build time, so the site never shows a stale one.

Everything in these tables is computed by calling :func:`flyteplugins.wandb_core.plan_job`,
:func:`~flyteplugins.wandb_core.plan` and :func:`~flyteplugins.wandb_core.link_targets`: when the
code changes, the documentation changes with it. Patterns such as ``{base}-rank-{global_rank}`` are
recovered from concrete ids of a job chosen so that every number is distinct (3 nodes x 4
processes, global rank 9 = worker 2, local rank 1), so a wrong pattern cannot be printed.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import flyteplugins.wandb_core as core
    from flyteplugins.wandb_core._cli import main as cli_main
except ImportError:  # building from a checkout where core is not installed
    sys.path.insert(
        0, str(Path(__file__).resolve().parents[2] / "packages/flyteplugins-wandb-core/src")
    )
    import flyteplugins.wandb_core as core
    from flyteplugins.wandb_core._cli import main as cli_main

BASE = "{base}"
MODES = ("auto", "shared", "new")
SCOPES = ("global", "worker")
END = "<!-- /plan -->"
# An opening marker, then (once generated) everything up to the closing one; never across
# another opening marker (a new, not yet generated one above a generated region).
_REGION = re.compile(
    r"^<!--[ \t]*plan:(\w+)([^\n]*?)-->[ \t]*$"
    r"(?:(?:(?!^<!--[ \t]*plan:).)*?^<!--[ \t]*/plan[ \t]*-->[ \t]*$)?",
    re.MULTILINE | re.DOTALL,
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _code(text: str) -> str:
    return f"`{text}`"


def _count(n_runs: int, nnodes: int, nproc: int) -> str:
    """Name a count as the spec does: 1, N (workers) or NxM (all processes)."""
    if n_runs == 1:
        return "1"
    if n_runs == nnodes:
        return "N"
    if n_runs == nnodes * nproc:
        return "N\u00d7M"
    raise AssertionError(f"unexpected run count {n_runs} for {nnodes}x{nproc}")


def _who(jobs: list[tuple[Any, Any]]) -> str:
    init = {t.rank for t, p in jobs if p.initializes}
    everyone = {t.rank for t, _ in jobs}
    shared = any(p.shared for _, p in jobs)
    if init == everyone:
        return "all ranks (shared mode)" if shared else "all ranks"
    if init == {0}:
        return "global rank 0 only"
    if init == {t.rank for t, _ in jobs if t.local_rank == 0}:
        return "local_rank 0 per worker"
    raise AssertionError(f"unexpected initialising ranks {sorted(init)}")


def render_modes() -> str:
    """The 'Run modes in distributed context' table, for a 3-node x 2-process job."""
    nnodes, nproc = 3, 2
    rows = []
    for mode in MODES:
        for scope in SCOPES:
            jobs = core.plan_job(mode, scope, nnodes, nproc, BASE)
            runs = {p.run_id for _, p in jobs if p.logs}
            groups = {p.group for _, p in jobs if p.group}
            finishers = sum(1 for _, p in jobs if p.finishes)
            grouping = (
                "-"
                if not groups
                else f"{_count(len(groups), nnodes, nproc)} group"
                + ("s" if len(groups) > 1 else "")
            )
            rows.append(
                (
                    _code(mode),
                    _code(scope),
                    _who(jobs),
                    _count(len(runs), nnodes, nproc),
                    grouping,
                    _count(finishers, nnodes, nproc),
                )
            )
    header = (
        "run_mode",
        "rank_scope",
        "Who initializes W&B?",
        "W&B runs",
        "Grouping",
        "Runs marked finished by",
    )
    note = (
        "\n\nN = number of workers (nodes), M = processes per worker. Computed for N=3, M=2. "
        "The last column counts the processes whose `finish` sets the run's final state "
        "(the owner, or the shared-mode primary); every other writer only flushes its data."
    )
    return _table(header, rows) + note


def _pattern(text: str | None, t: Any) -> str:
    """Turn a concrete id into its pattern, knowing the numbers of topology ``t``."""
    if text is None:
        return "-"
    out = text.replace(f"-worker-{t.worker_index}", "-worker-{idx}")
    if t.rank != t.local_rank:
        out = out.replace(f"-rank-{t.rank}", "-rank-{global_rank}")
        out = out.replace(f"-rank-{t.local_rank}", "-rank-{local_rank}")
    else:
        out = out.replace(f"-rank-{t.rank}", "-rank-{rank}")
    return _code(out)


def _probe(mode: str, scope: str, nnodes: int, nproc: int, rank: int, **kw: Any) -> tuple[Any, Any]:
    jobs = core.plan_job(mode, scope, nnodes, nproc, BASE, **kw)
    return next((t, p) for t, p in jobs if t.rank == rank)


def _key(p: Any) -> tuple[Any, ...]:
    """What a plan does, without the scope it was asked for."""
    return (
        p.initializes,
        p.reuses_parent,
        p.run_id,
        p.group,
        p.shared,
        p.primary,
        p.label,
        p.finishes,
    )


def render_ids() -> str:
    """The 'Run ID patterns' table, plus the rows for a user-supplied id."""
    rows = []
    # single node: 1 x 4, rank 3 (rank == local_rank); multi-node: 3 x 4, rank 9.
    cases: list[tuple[str, str, str, int, int, int]] = [
        ("Single-node auto (either scope)", "auto", "worker", 1, 4, 0),
        ("Single-node shared (either scope)", "shared", "worker", 1, 4, 3),
        ("Single-node new (either scope)", "new", "worker", 1, 4, 3),
        ("Multi-node auto (global)", "auto", "global", 3, 4, 0),
        ("Multi-node auto (worker)", "auto", "worker", 3, 4, 8),
        ("Multi-node shared (global)", "shared", "global", 3, 4, 9),
        ("Multi-node shared (worker)", "shared", "worker", 3, 4, 9),
        ("Multi-node new (global)", "new", "global", 3, 4, 9),
        ("Multi-node new (worker)", "new", "worker", 3, 4, 9),
    ]
    for label, mode, scope, nnodes, nproc, rank in cases:
        t, p = _probe(mode, scope, nnodes, nproc, rank)
        if nnodes == 1:  # the "either scope" claim: worker scope = global scope on one node
            same = [_key(q) for _, q in core.plan_job(mode, "global", nnodes, nproc, BASE)]
            other = [_key(q) for _, q in core.plan_job(mode, "worker", nnodes, nproc, BASE)]
            assert same == other, f"single-node {mode}: worker scope differs from global scope"
        rows.append((label, _pattern(p.run_id, t), _pattern(p.group, t)))
    t, p = _probe("new", "worker", 3, 4, 9, user_id="my-id")
    rows.append(
        ("User id `my-id`, multi-node new (worker)", _pattern(p.run_id, t), _pattern(p.group, t))
    )
    t, p = _probe("auto", "worker", 3, 4, 8, user_id="my-id")
    rows.append(
        ("User id `my-id`, multi-node auto (worker)", _pattern(p.run_id, t), _pattern(p.group, t))
    )
    note = (
        "\n\n`{base}` = `{run_name}-{action_name}`, made valid for W&B by "
        "[`make_base`](api/core.md#flyteplugins.wandb_core.make_base). On a single node, "
        "`rank` and `local_rank` are the same number."
    )
    return _table(("Scenario", "Run ID pattern", "Group"), rows) + note


def render_single() -> str:
    """Single-process tasks: what each run_mode does with and without a parent run."""
    situations = [
        ("no parent run", {}),
        ("parent run in this process", {"parent_id": "{parent}", "parent_in_process": True}),
        ("parent run in another process", {"parent_id": "{parent}"}),
        ('`id="my-id"` given, parent exists', {"parent_id": "{parent}", "user_id": "my-id"}),
    ]
    rows = []
    for mode in MODES:
        for label, kw in situations:
            p = core.plan(mode, "global", None, BASE, **kw)
            if p.reuses_parent:
                action = "logs to the parent's live run object"
            elif p.joins_existing:
                action = f"joins the parent's run as a shared-mode writer (label `{p.label}`)"
            else:
                action = "starts and finishes its own run"
            rows.append((_code(mode), label, action, _code(p.run_id or "-"), p.role))
    return _table(("run_mode", "Situation", "What the task does", "Run id", "Role"), rows)


def render_links() -> str:
    """Which pages a task's links point at, for a plain task and a 2-node job."""
    rows = []
    for mode in MODES:
        for scope in SCOPES:
            plain = core.link_targets(mode, scope, BASE)
            dist = core.link_targets(mode, scope, BASE, nnodes=2, nproc_per_node=2)
            desc = ", ".join(
                f"{t.kind} `{t.id}`" + (f" (worker {t.worker})" if t.worker is not None else "")
                for t in dist
            )
            rows.append((_code(mode), _code(scope), f"{plain[0].kind} `{plain[0].id}`", desc))
    return _table(("run_mode", "rank_scope", "Plain task", "Elastic, 2 nodes x 2 processes"), rows)


def render_cli(args: str) -> str:
    argv = shlex.split(args)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main(argv)
    assert code == 0, f"plan CLI failed for {args!r}"
    shown = "flyteplugins-wandb-plan " + args.strip()
    return f"```console\n$ {shown}\n{buf.getvalue().rstrip()}\n```"


RENDERERS: dict[str, Callable[..., str]] = {
    "modes": render_modes,
    "ids": render_ids,
    "single": render_single,
    "links": render_links,
}


def _render(kind: str, args: str) -> str:
    if kind == "cli":
        return render_cli(args)
    if kind not in RENDERERS:
        raise ValueError(f"unknown plan table {kind!r}; known: {sorted(RENDERERS)} and 'cli'")
    return RENDERERS[kind]()


def _replace(match: re.Match[str]) -> str:
    kind, args = match.group(1), match.group(2)
    opening = match.group(0).split("\n", 1)[0]
    return f"{opening}\n\n{_render(kind, args)}\n\n{END}"


def regenerate(markdown: str) -> str:
    """``markdown`` with every ``<!-- plan:... -->`` region holding its current table."""
    return _REGION.sub(_replace, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs event: render every region of the page afresh."""
    return regenerate(markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the regions of every page under docs/ (``--check``: report stale pages, exit 1)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    docs = Path(__file__).resolve().parents[1]
    stale = []
    for page in sorted(docs.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        fresh = regenerate(text)
        if fresh != text:
            stale.append(page.relative_to(docs.parent))
            if not check:
                page.write_text(fresh, encoding="utf-8")
    verb = "are stale" if check else "were regenerated"
    if stale:
        print(f"generated tables {verb} in: {', '.join(map(str, stale))}")
        if check:
            print("run `nox -s tables` (python docs/hooks/plan_tables.py) and commit the pages")
            return 1
    else:
        print("generated tables are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
