"""The change-test loop: the README's test command on a fresh clone of this repository.

Clones the committed ``HEAD`` into a temporary folder and runs ``.ci/run`` there (which runs the
README's test command verbatim: a new virtualenv, nox and uv, then every default nox session),
timing the whole command; each pytest run inside it is listed with its own time. The figure
includes every install (uv's cache is warm after the first run on a machine, as on a developer's
machine and on CI with its cache). Target on the 2-core machine: <= 6 min.

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
        start = time.perf_counter()
        proc = subprocess.run(
            [str(clone / ".ci" / "run")], cwd=clone, env=env, capture_output=True, text=True
        )
        took = time.perf_counter() - start
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
