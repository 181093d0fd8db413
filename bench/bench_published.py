"""Our plugin against the published ``flyteplugins-wandb`` 2.12.1 on the same task.

The same script, using only the API both share (``@wandb_init`` above ``@env.task``,
``get_wandb_run()``), runs a local Flyte task that logs 100 rows to an offline W&B run: once with
this repository's packages (in a twin virtualenv with the same third-party distributions, so
only the plugin differs), once in the published package's own virtualenv
(``bench/published.py``), alternately, ``BENCH_PUBLISHED_REPEAT`` times each. Two figures per
side: the whole process (imports included) and the Flyte run alone (timed inside the process,
with flyte and wandb already imported).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from typing import Any

from published import PUBLISHED_VERSION, run_published, twin_python

REPEAT = int(os.environ.get("BENCH_PUBLISHED_REPEAT", "5"))
ROWS = 100

# wandb is imported before the timer on both sides: ours imports it lazily, when the run starts.
SCRIPT = f"""
import time
import flyte
import wandb
from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="bench_published")


@wandb_init(project="bench")
@env.task
def train() -> int:
    run = get_wandb_run()
    for i in range({ROWS}):
        run.log({{"loss": 1.0 / (i + 1), "step": i}})
    return {ROWS}


flyte.init()
start = time.perf_counter()
flyte.with_runcontext(mode="local", name="bench-published").run(train)
print(time.perf_counter() - start)
"""


def _env(tmp: str) -> dict[str, str]:
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": tmp,
        "WANDB_CONFIG_DIR": os.path.join(tmp, ".config"),
        "WANDB_CACHE_DIR": os.path.join(tmp, ".cache"),
    }


def _ours(tmp: str) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(twin_python()), "-c", SCRIPT],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **_env(tmp)},
        cwd=tmp,
        timeout=300,
    )
    return time.perf_counter() - start, float(proc.stdout.split()[-1])


def _theirs(tmp: str) -> tuple[float, float]:
    start = time.perf_counter()
    proc = run_published(SCRIPT, env=_env(tmp), cwd=tmp, timeout=300)
    return time.perf_counter() - start, float(proc.stdout.split()[-1])


def run() -> list[dict[str, Any]]:
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as warm:
        _theirs(warm)  # creates the published venv on first use; not timed
        _ours(warm)
    for _ in range(REPEAT):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            ours.append(_ours(a))
            theirs.append(_theirs(b))
    label = f"vs published {PUBLISHED_VERSION}"
    return [
        {
            "benchmark": f"task logging {ROWS} rows offline, whole process ({label})",
            "value": statistics.median(w for w, _ in ours),
            "baseline": statistics.median(w for w, _ in theirs),
            "unit": "s",
            "target": "<= 1.10x baseline",
        },
        {
            "benchmark": f"task logging {ROWS} rows offline, Flyte run only ({label})",
            "value": statistics.median(r for _, r in ours),
            "baseline": statistics.median(r for _, r in theirs),
            "unit": "s",
            "target": "<= 1.10x baseline",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
