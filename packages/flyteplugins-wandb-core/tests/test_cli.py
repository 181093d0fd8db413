"""The plan command line, run as a real subprocess: the installed script and ``python -m``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("flyteplugins-wandb-plan")
Runner = Callable[..., subprocess.CompletedProcess[str]]


def script(*args: str) -> subprocess.CompletedProcess[str]:
    """The console script installed with the distribution (next to this interpreter)."""
    assert SCRIPT.is_file(), f"{SCRIPT} is not installed: pip install flyteplugins-wandb-core"
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, check=False)


def module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flyteplugins.wandb_core", *args],
        capture_output=True,
        text=True,
        check=False,
    )


WORKER_NEW = (
    "--nnodes",
    "2",
    "--nproc-per-node",
    "2",
    "--run-mode",
    "new",
    "--rank-scope",
    "worker",
    "--base",
    "r-a0",
    "--links",
)


def test_plan_table() -> None:
    out = script(*WORKER_NEW)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "rank",
        "worker",
        "local_rank",
        "initialises",
        "run",
        "id",
        "group",
        "role",
    ]
    assert lines[5].split() == [
        "3",
        "1",
        "1",
        "yes",
        "r-a0-worker-1-rank-1",
        "r-a0-worker-1",
        "owner",
    ]
    assert "2 node(s) x 2 process(es): 4 W&B run(s), 2 group(s)" in out.stdout
    assert "link: group r-a0-worker-0 (worker 0)" in out.stdout
    assert "note:" not in out.stdout  # a valid base is used as given


@pytest.mark.parametrize(
    "run",
    [
        lambda *a: script("plan", *a),  # the spelling of earlier versions (and of the noxfile)
        lambda *a: module(*a),
        lambda *a: module("plan", *a),
    ],
    ids=["script plan", "module", "module plan"],
)
def test_every_spelling_prints_the_same(run: Runner) -> None:
    want = script(*WORKER_NEW)
    got = run(*WORKER_NEW)
    assert (got.returncode, got.stdout, got.stderr) == (0, want.stdout, "")


@pytest.mark.parametrize(
    ("run", "prog"),
    [(script, "flyteplugins-wandb-plan"), (module, "python -m flyteplugins.wandb_core")],
)
def test_usage_names_the_command_run(run: Runner, prog: str) -> None:
    out = run("--help")
    assert out.returncode == 0
    assert out.stdout.startswith(f"usage: {prog} [-h]")
    assert f"{prog} plan --nnodes 2" in out.stdout  # the epilog shows the older spelling
    bad = run("--run-mode", "always")
    assert bad.stderr.startswith(f"usage: {prog} [-h]")
    assert f"{prog}: error: argument --run-mode: invalid choice: 'always'" in bad.stderr


def test_silent_ranks_shown() -> None:
    out = script("--nnodes", "1", "--nproc-per-node", "3", "--base", "b")
    assert out.returncode == 0
    assert out.stdout.count("silent") == 2


def test_no_shape_is_a_plain_task() -> None:
    for out in (script("--run-mode", "new", "--base", "b"), script("--plain", "--run-mode", "new")):
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[2].split()[:3] == ["-", "-", "-"]
        assert "plain task: 1 W&B run(s), 0 group(s)" in out.stdout
    assert script("--run-mode", "new", "--base", "b").stdout.splitlines()[2].split() == [
        "-",
        "-",
        "-",
        "yes",
        "b",
        "-",
        "owner",
    ]


def test_base_is_cleaned_and_said_so() -> None:
    out = script("--base", "my run/1-a0", "--links")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[2].split()[4] == "my-run-1-a0"
    assert "note: --base 'my run/1-a0' is used as 'my-run-1-a0'" in out.stdout
    assert "link: run my-run-1-a0" in out.stdout


def test_elastic_range_is_shown_for_its_maximum() -> None:
    out = script(
        "--nnodes", "1:4", "--nproc-per-node", "2", "--base", "b", "--rank-scope", "worker"
    )
    assert out.returncode == 0, out.stderr
    assert "4 node(s) x 2 process(es): 4 W&B run(s)" in out.stdout
    assert "note: Elastic nnodes '1:4' is shown for its maximum, 4 node(s)" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run-mode", "always"], "invalid choice: 'always'"),
        (["--rank-scope", "node"], "invalid choice: 'node'"),
        (["--nnodes", "0"], "invalid nnodes '0': must be >= 1"),
        (["--nnodes", "two"], "invalid nnodes 'two'"),
        (["--nproc-per-node", "x"], "'x' is not an integer"),
        (["--id", "bad/id"], "invalid W&B run id 'bad/id'"),
        (["--plain", "--nnodes", "2"], "--plain is a task that is not distributed"),
        (["--parent-in-process", "--nproc-per-node", "2"], "applies to a plain task only"),
        (["plan", "plan"], "unrecognized arguments: plan"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    out = script(*args)
    assert out.returncode == 2
    assert out.stderr.startswith("usage: flyteplugins-wandb-plan")
    assert message in out.stderr
    assert out.stdout == ""
