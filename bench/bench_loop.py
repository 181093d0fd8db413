"""The change-test loop: the README's test command on a fresh clone of this repository.

Clones the committed ``HEAD`` into a temporary folder and runs ``.ci/run`` there (which runs the
README's test command verbatim: a new virtualenv, nox and uv, then every default nox session),
timing the whole command; each pytest run inside it is listed with its own time. The figure
includes every install (uv's cache is warm after the first run on a machine, as on a developer's
machine and on CI with its cache). Target on the 2-core machine: <= 6 min.

The machine's busy CPU time over the command (``/proc/stat``: every process, the services and
jobs the tests start included) bounds it from below: on ``N`` cores the command cannot end in
less than busy time / ``N``, however its tests are spread over processes. That floor is a row.

Slow (the whole test suite): ``BENCH_LOOP=0`` skips it (a row says so).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 6 * 60


def _pytest_runs(output: str) -> list[tuple[str, float]]:
    """``(summary, seconds)`` of each pytest run in the output (``== 3 passed in 8.35s ==``)."""
    pattern = re.compile(r"=+ (\d+ passed[^=]*?) in ([\d.]+)s")
    return [(m.group(1), float(m.group(2))) for m in pattern.finditer(output)]


def busy_cpu_s() -> float | None:
    """Seconds of CPU time this machine has spent busy since boot, all cores (Linux only)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is inside user


def run() -> list[dict[str, Any]]:
    if os.environ.get("BENCH_LOOP", "1") == "0":
        return [
            {
                "benchmark": "README test command, fresh clone: skipped (BENCH_LOOP=0)",
                "value": float("nan"),
                "baseline": None,
                "unit": "",
                "target": "",
            }
        ]
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "VIRTUAL_ENV"))}
        busy_before = busy_cpu_s()
        start = time.perf_counter()
        proc = subprocess.run(
            [str(clone / ".ci" / "run")], cwd=clone, env=env, capture_output=True, text=True
        )
        took = time.perf_counter() - start
        busy_after = busy_cpu_s()
    if proc.returncode != 0:
        raise RuntimeError(f".ci/run failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    rows = [
        {
            "benchmark": "README test command, fresh clone (whole command)",
            "value": round(took / 60, 2),
            "baseline": None,
            "unit": "min",
            "target": f"<= {TARGET_S / 60:g} min",
        }
    ]
    cores = os.cpu_count() or 1
    if busy_before is not None and busy_after is not None:
        busy = busy_after - busy_before
        rows += [
            {
                "benchmark": "README test command: busy CPU time of the machine over it",
                "value": round(busy / 60, 2),
                "baseline": None,
                "unit": "CPU-min",
                "target": "report",
            },
            {
                "benchmark": f"README test command: floor on {cores} cores (busy CPU time / cores)",
                "value": round(busy / cores / 60, 2),
                "baseline": None,
                "unit": "min",
                "target": f"<= {TARGET_S / 60:g} min for the goal to be reachable",
            },
        ]
    for summary, seconds in sorted(_pytest_runs(proc.stdout + proc.stderr), key=lambda r: -r[1]):
        rows.append(
            {
                "benchmark": f"README test command: a pytest run inside it ({summary})",
                "value": round(seconds / 60, 2),
                "baseline": None,
                "unit": "min",
                "target": "report",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']:<72} {row['value']:>8} {row['unit']}  {row['target']}")
