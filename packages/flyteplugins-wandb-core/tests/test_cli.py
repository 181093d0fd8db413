"""The plan command line, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flyteplugins.wandb_core", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_plan_table() -> None:
    out = run(
        "plan",
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
    assert "r-a0-worker-1-rank-1" in lines[5] and "r-a0-worker-1" in lines[5]
    assert "4 W&B run(s), 2 group(s)" in out.stdout
    assert "link: group r-a0-worker-0 (worker 0)" in out.stdout


def test_silent_ranks_shown() -> None:
    out = run("plan", "--nnodes", "1", "--nproc-per-node", "3", "--base", "b")
    assert out.returncode == 0
    assert out.stdout.count("silent") == 2


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--run-mode", "always"],
        ["plan", "--rank-scope", "node"],
        ["plan", "--nnodes", "0"],
        ["plan", "--nproc-per-node", "x"],
        ["plan", "--id", "bad/id"],
        [],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    out = run(*args)
    assert out.returncode == 2
    assert "usage:" in out.stderr
