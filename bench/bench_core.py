"""Benchmarks of the core distribution: import cost, purity, and the cost of a plan.

* ``import flyteplugins.wandb_core`` adds at most 30 ms to a bare ``python -c pass`` (both are
  whole processes, run alternately, median of ``BENCH_CORE_REPEAT`` pairs). Core imports the
  standard library as written (``dataclasses``, ``re``, ``typing``); the interpreter's own
  ``-X importtime`` figure for the package is printed beside it, as it is steadier on a busy
  machine than the wall-clock difference.
* the import pulls in no third-party module (``sys.modules`` after the import, compared with
  ``sys.stdlib_module_names``);
* planning a 64-node x 8-process job (512 ranks), for scale.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

REPEAT = int(os.environ.get("BENCH_CORE_REPEAT", "20"))

_FOREIGN = """
import json, sys
before = set(sys.modules)
import flyteplugins.wandb_core
added = set(sys.modules) - before
std = set(sys.stdlib_module_names)
print(json.dumps(sorted(m for m in added
                        if m.split('.')[0] not in std and not m.startswith('flyteplugins'))))
"""


def _wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def import_cost() -> tuple[float, float, float]:
    """Medians of ``python -c pass``, of ``python -c 'import core'`` and of their difference.

    The two commands alternate, so a busy machine slows both alike; the added cost is the median
    of the per-pair differences.
    """
    bare_code, core_code = "pass", "import flyteplugins.wandb_core"
    _wall(core_code)  # write the bytecode cache once, as an installed package has it
    bare, with_core = [], []
    for _ in range(REPEAT):
        bare.append(_wall(bare_code))
        with_core.append(_wall(core_code))
    added = statistics.median(c - b for b, c in zip(bare, with_core, strict=True))
    return statistics.median(bare), statistics.median(with_core), added


def importtime_cost() -> float:
    """Median over ``REPEAT`` fresh processes of ``-X importtime``'s cumulative figure for core."""
    samples = []
    for _ in range(REPEAT):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import flyteplugins.wandb_core"],
            check=True,
            capture_output=True,
            text=True,
        ).stderr
        # "import time: self [us] | cumulative | imported package"; the package's own line is last
        line = next(
            ln for ln in reversed(err.splitlines()) if ln.endswith("| flyteplugins.wandb_core")
        )
        samples.append(int(line.split("|")[1]) / 1e6)
    return statistics.median(samples)


def foreign_modules() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _FOREIGN], check=True, capture_output=True, text=True
    ).stdout
    result: list[str] = json.loads(out)
    return result


def plan_cost() -> float:
    from flyteplugins.wandb_core import plan_job

    times = []
    for _ in range(7):
        start = time.perf_counter()
        plan_job("new", "worker", 64, 8, "bench-run-a0")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[dict[str, Any]]:
    bare, _, added = import_cost()
    foreign = foreign_modules()
    return [
        {
            "benchmark": "import flyteplugins.wandb_core: added to `python -c pass`",
            "value": added * 1e3,
            "baseline": None,
            "unit": "ms",
            "target": "<= 30 ms",
        },
        {
            "benchmark": "import flyteplugins.wandb_core: -X importtime, cumulative",
            "value": importtime_cost() * 1e3,
            "baseline": None,
            "unit": "ms",
            "target": "<= 30 ms",
        },
        {
            "benchmark": "python -c 'import flyteplugins.wandb_core' (whole process)",
            "value": (bare + added) * 1e3,
            "baseline": bare * 1e3,
            "unit": "ms",
            "target": "info",
        },
        {
            "benchmark": "third-party modules imported by core"
            + (f" ({', '.join(foreign)})" if foreign else ""),
            "value": float(len(foreign)),
            "baseline": None,
            "unit": "modules",
            "target": "0",
        },
        {
            "benchmark": "plan_job for 64 nodes x 8 processes (512 ranks)",
            "value": plan_cost() * 1e3,
            "baseline": None,
            "unit": "ms",
            "target": "info",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
