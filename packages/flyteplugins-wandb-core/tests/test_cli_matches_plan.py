"""The installed plan script prints what core plans, for every run_mode x rank_scope x shape.

Each case runs the real ``flyteplugins-wandb-plan`` process and compares every row of its table
(and its link lines) with :func:`plan` / :func:`plan_job` / :func:`link_targets` called here the
way the plugin calls them at run time: the base from :func:`make_base` of a Flyte run name that
needs cleaning, ``topology=None`` for a plain task, the maximum of an Elastic range.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import script

from flyteplugins.wandb_core import (
    RANK_SCOPES,
    RUN_MODES,
    RunPlan,
    Topology,
    link_targets,
    make_base,
    parse_nnodes,
    plan,
    plan_job,
)
from flyteplugins.wandb_core._cli import main

RUN_NAME, ACTION = "Nightly run/7", "a0"  # cleaned by make_base: "Nightly-run-7-a0"

# shape name -> (CLI options, nnodes as the task configures it or None for a plain task, nproc)
SHAPES: dict[str, tuple[list[str], str | None, int]] = {
    "plain": ([], None, 1),
    "1x2": (["--nproc-per-node", "2"], "1", 2),
    "2x2": (["--nnodes", "2", "--nproc-per-node", "2"], "2", 2),
    "1:4 range": (["--nnodes", "1:4", "--nproc-per-node", "2"], "1:4", 2),
}

# Who else the task's run may involve: (CLI options, plan keywords)
PARENTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "alone": ([], {}),
    "parent": (["--parent-id", "p-a0"], {"parent_id": "p-a0"}),
    "user id": (
        ["--id", "my-id", "--parent-id", "p-a0"],
        {"user_id": "my-id", "parent_id": "p-a0"},
    ),
}


def expected_row(t: Topology | None, p: RunPlan) -> list[str]:
    where = ["-", "-", "-"] if t is None else [str(t.rank), str(t.worker_index), str(t.local_rank)]
    role = p.role + (f" ({p.label})" if p.label else "")
    return [*where, "yes" if p.initializes else "no", p.run_id or "-", p.group or "-", role]


def table_rows(stdout: str) -> list[list[str]]:
    """The body of the printed table: columns are separated by two spaces or more."""
    body = stdout.split("\n\n", 1)[0].splitlines()[2:]
    return [re.split(r"\s{2,}", line.strip()) for line in body]


def link_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("link: ")]


@pytest.mark.parametrize("parent", list(PARENTS))
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("scope", RANK_SCOPES)
@pytest.mark.parametrize("mode", RUN_MODES)
def test_cli_prints_the_runtime_plan(mode: str, scope: str, shape: str, parent: str) -> None:
    options, nnodes, nproc = SHAPES[shape]
    parent_options, parent_kw = PARENTS[parent]
    base = make_base(RUN_NAME, ACTION)  # what the plugin builds from the Flyte action
    args = [*options, "--run-mode", mode, "--rank-scope", scope, "--base", f"{RUN_NAME}-{ACTION}"]
    out = script(*args, *parent_options, "--links")
    assert out.returncode == 0, out.stderr

    if nnodes is None:
        # A plain task joining its parent from another process is labelled with its action name.
        p = plan(mode, scope, None, base, label="{action_name}", **parent_kw)
        want = [expected_row(None, p)]
    else:
        jobs = plan_job(mode, scope, parse_nnodes(nnodes), nproc, base, **parent_kw)
        want = [expected_row(t, q) for t, q in jobs]
    assert table_rows(out.stdout) == want

    targets = link_targets(mode, scope, base, nnodes=nnodes, nproc_per_node=nproc, **parent_kw)
    assert link_lines(out.stdout) == [
        f"link: {t.kind} {t.id}" + (f" (worker {t.worker})" if t.worker is not None else "")
        for t in targets
    ]
    assert f"note: --base '{RUN_NAME}-{ACTION}' is used as '{base}'" in out.stdout
    assert ("shown for its maximum, 4 node(s)" in out.stdout) == (shape == "1:4 range")


def test_plain_new_is_base_without_group() -> None:
    """The case a user tripped on: a plain task with run_mode="new" gets {base}, no group."""
    out = script("--run-mode", "new", "--base", "b-a0")
    assert table_rows(out.stdout) == [["-", "-", "-", "yes", "b-a0", "-", "owner"]]
    assert plan("new", "global", None, "b-a0").group is None


def test_parent_in_process_reuses_the_live_run() -> None:
    out = script("--parent-id", "p-a0", "--parent-in-process", "--run-mode", "auto")
    assert table_rows(out.stdout) == [["-", "-", "-", "no", "p-a0", "-", "reuse"]]


names = st.text(
    alphabet=st.sampled_from(list("aZ9._- /:#?é{}")), min_size=1, max_size=150
) | st.just("{{.runName}}" * 4)


@settings(max_examples=60)
@given(run_name=names, action=st.sampled_from(["a0", "a1-x", "n/3"]))
def test_any_base_is_cleaned_as_make_base(run_name: str, action: str) -> None:
    argv = [f"--base={run_name}-{action}", "--run-mode", "new"]
    buf, err = io.StringIO(), io.StringIO()
    try:
        want = make_base(run_name, action)
    except ValueError as exc:  # too many templates to fit: the CLI refuses it the same way
        refusal = str(exc)
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and refusal in err.getvalue()
        return
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    assert table_rows(buf.getvalue())[0][4] == want
