"""Benchmarks: each measured side by side with its baseline in one run; prints a table."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def wall(cmd: list[str], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    bare = wall([sys.executable, "-c", "pass"])
    core = wall([sys.executable, "-c", "import flyteplugins.wandb_core"])
    print(f"{'benchmark':<40} {'median':>10} {'baseline':>10} {'added':>10}")
    print(
        f"{'import flyteplugins.wandb_core':<40} {core * 1e3:>8.1f}ms {bare * 1e3:>8.1f}ms "
        f"{(core - bare) * 1e3:>8.1f}ms"
    )


if __name__ == "__main__":
    main()
