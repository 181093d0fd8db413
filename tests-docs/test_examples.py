"""Every complete ```python example of the docs and the README runs as written.

Each block runs as a script (``__name__ == "__main__"``) in a fresh interpreter, in a temporary
folder that is its working directory, ``HOME`` and ``TMPDIR``, with W&B offline
(``WANDB_MODE=offline``, ``WANDB_DIR`` there) and no ``WANDB_*`` variable of the caller: an
example that runs a task does so the way it shows (``flyte.init()``,
``flyte.with_runcontext(mode="local")``), with the real Flyte and wandb. A block that needs what
a test cannot give (a Flyte cluster, ``torchrun``, GPUs, a W&B account) or that is a fragment of
a larger program is marked ``<!-- sketch -->`` and is not run (see ``markdown_blocks``).

``nox -s docs`` runs this file after building the site (about 30 s on 2 cores, one after
another).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_blocks import ROOT, Block, python_blocks

EXAMPLES = [b for b in python_blocks() if not b.sketch and b.run_by is None]
TIMEOUT_S = 180
# The plugin's warnings that data did not reach W&B (or the run's folder): an example that logs
# something W&B cannot record still exits 0, so its output is read for them.
LOST = re.compile(r"\b(Wandb\w*Failed|WandbOfflineRunNotSaved|WandbUploadIncomplete)\b: ")


def example_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "FLYTE_"))}
    env.update(
        HOME=str(home),
        TMPDIR=str(home),
        WANDB_MODE="offline",
        WANDB_DIR=str(home),
        WANDB_CONFIG_DIR=str(home / ".config" / "wandb"),
        WANDB_CACHE_DIR=str(home / ".cache" / "wandb"),
        WANDB_DATA_DIR=str(home / ".local" / "wandb"),
        WANDB_SILENT="true",
    )
    return env


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5, [b.name for b in EXAMPLES]


def test_an_example_that_decorates_a_task_runs_it() -> None:
    """Defining a task proves little: its body runs only when the example runs the task."""
    idle = [
        b.name
        for b in EXAMPLES
        if ("@wandb_init" in b.code or "@wandb_sweep" in b.code) and ".run(" not in b.code
    ]
    assert not idle, f"examples that decorate a task but never run one: {idle}"


def test_examples_run_elsewhere_are_run_there() -> None:
    for block in python_blocks():
        if block.run_by is not None:
            assert block.run_by.is_file(), f"{block.name}: no test {block.run_by}"
            page = str(block.path.relative_to(ROOT))
            assert page in block.run_by.read_text(), f"{block.run_by} does not name {page}"


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: b.name)
def test_example_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code)
    try:
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=example_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.name}: still running after {TIMEOUT_S} s\n{exc.stderr!s:.4000}")
    assert proc.returncode == 0, (
        f"the example at {block.name} fails (mark it <!-- sketch --> if it cannot run as a "
        f"whole, and say so in the page):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    lost = [line for line in proc.stderr.splitlines() if LOST.search(line)]
    assert not lost, f"the example at {block.name} runs but loses data:\n" + "\n".join(lost)
