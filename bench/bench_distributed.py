"""Benchmark of W&B in a distributed job: a real 2-node x 2-process Elastic job on CPU.

Two launcher processes (two simulated nodes, one rendezvous on 127.0.0.1) run the same Elastic
task through the Elastic plugin's own remote path (see ``tests-integration/torchrun_harness.py``)
in these variants: without W&B, with ``@wandb_init`` (auto/global, one run) and with
``@wandb_init(run_mode="new")`` (global scope: a run per rank, four runs), and again with every
rank first spending ``SETUP_S`` (1 s) on set-up of its own (a wait, as on data). Each job does
200 steps of a gloo ``all_reduce``; the ranks that have a run log every step (offline). The
variants are
interleaved for ``ROUNDS`` rounds (default 3) and the medians reported:

* whole-job wall time (the slower node's ``execute``) of each W&B variant against the baseline;
  target for auto/global: <= 1.05x (<= 1.02x with the 1 s set-up);
* per-rank added start-up: how much later a rank reaches the task body (seconds since its
  process was created) than in the baseline, mean over ranks; for auto/global the logging rank
  (rank 0) too.

A job is a few seconds long, most of it process start-up, so the ratio is a worst case: the
added cost is a fixed ~1 s per job (the logging rank's ``wandb.init``), not per step.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests-integration"))

from _services import services, stop  # noqa: E402
from torchrun_harness import Case, LaunchResult, launch  # noqa: E402

STEPS = int(os.environ.get("BENCH_DISTRIBUTED_STEPS", "200"))
ROUNDS = int(os.environ.get("BENCH_DISTRIBUTED_ROUNDS", "3"))
NNODES, NPROC = 2, 2
SETUP_S = float(os.environ.get("BENCH_DISTRIBUTED_SETUP_S", "1.0"))
_AUTO = {"run_mode": "auto", "rank_scope": "global"}
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"decorate": False},
    "auto_global": {**_AUTO},
    "new_global": {"run_mode": "new", "rank_scope": "global"},
    # every rank first spends SETUP_S on its own set-up (as on loading data)
    "baseline_setup": {"decorate": False, "setup_s": SETUP_S},
    "auto_global_setup": {**_AUTO, "setup_s": SETUP_S},
}


def _cases() -> list[Case]:
    """Every variant once per round, interleaved, so load drift hits all of them alike."""
    return [
        Case(name=f"{variant}_{i}", steps=STEPS, **kwargs)
        for i in range(ROUNDS)
        for variant, kwargs in VARIANTS.items()
    ]


def _wall(job: LaunchResult, case: str) -> float:
    results = job.case(case)
    if len(results) != NNODES or not all(r["ok"] for r in results):
        raise RuntimeError(f"benchmark job {case} failed: {results}")
    return max(float(r["wall_s"]) for r in results)


def _startup(job: LaunchResult, case: str) -> dict[int, float]:
    return {int(e["rank"]): float(e["startup_s"]) for e in job.evidence(case)}


def measure(root: Path) -> dict[str, Any]:
    """Medians over the rounds: whole-job wall and each rank's start-up, per variant."""
    env = {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / ".config"),
        "WANDB_CACHE_DIR": str(root / ".cache"),
        "WANDB_SILENT": "true",
    }
    job = launch(
        root, _cases(), nnodes=NNODES, nproc_per_node=NPROC, run_prefix="bench", env=env,
        timeout_s=1800,
    )  # fmt: skip
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        walls = [_wall(job, f"{variant}_{i}") for i in range(ROUNDS)]
        starts = [_startup(job, f"{variant}_{i}") for i in range(ROUNDS)]
        ranks = sorted(starts[0])
        out[variant] = {
            "wall": statistics.median(walls),
            "walls": walls,
            "startup": {r: statistics.median(s[r] for s in starts) for r in ranks},
        }
    base = out["baseline"]["startup"]
    for variant in ("auto_global", "new_global"):
        start = out[variant]["startup"]
        added = {r: start[r] - base[r] for r in base}
        out[variant]["added_startup_mean"] = statistics.mean(added.values())
        out[variant]["added_startup_rank0"] = added[0]
    return out


def service_rss(root: Path, nproc: int) -> float:
    """Peak summed RSS (MB) of the wandb-core services of a 1-node ``new``-mode job of ``nproc``
    ranks (every rank its own run), sampled every 50 ms while it runs."""
    import threading
    import time

    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(s.rss_bytes for s in services(root)))
            time.sleep(0.05)

    env = {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / ".config"),
        "WANDB_SILENT": "true",
    }
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        job = launch(
            root, [Case(name="rss", run_mode="new", steps=STEPS, step_sleep_s=0.01)],
            nnodes=1, nproc_per_node=nproc, run_prefix=f"rss{nproc}", env=env, timeout_s=600,
        )  # fmt: skip
    finally:
        done.set()
        watcher.join()
        stop(services(root))
    if not all(r["ok"] for r in job.case("rss")):
        raise RuntimeError(f"benchmark job rss ({nproc} ranks) failed: {job.case('rss')}")
    return peak / 1e6


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        m = measure(Path(tmp))
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        rss4 = service_rss(Path(tmp) / "4", 4)
        rss1 = service_rss(Path(tmp) / "1", 1)
    job = f"{NNODES}x{NPROC} Elastic job, {STEPS} steps"
    setup = f"each rank first spends {SETUP_S:g} s on its own set-up"

    def row(name: str, value: float, baseline: float | None, unit: str, target: str) -> Any:
        return {
            "benchmark": f"distributed: {name}",
            "value": value,
            "baseline": baseline,
            "unit": unit,
            "target": target,
        }

    def wall(name: str, variant: str, base: str, target: str) -> Any:
        return row(name, m[variant]["wall"], m[base]["wall"], "s", target)

    return [
        wall(f"{job}, auto/global (vs no W&B)", "auto_global", "baseline", "<= 1.05x baseline"),
        wall(
            f"same, {setup}, auto/global (vs no W&B, same set-up)",
            "auto_global_setup",
            "baseline_setup",
            "<= 1.02x baseline",
        ),
        wall(f"{job}, new/global, 4 runs (vs no W&B)", "new_global", "baseline", "report"),
        row(
            "client service RSS summed, 1 node x 4 ranks new mode (vs 1 rank)",
            rss4,
            rss1,
            "MB",
            "<= 1.3x baseline",
        ),
        row(
            "added start-up of the logging rank, auto/global",
            m["auto_global"]["added_startup_rank0"],
            None,
            "s",
            "report",
        ),
        row(
            "added start-up per rank (mean), auto/global",
            m["auto_global"]["added_startup_mean"],
            None,
            "s",
            "report",
        ),
        row(
            "added start-up per rank (mean), new/global",
            m["new_global"]["added_startup_mean"],
            None,
            "s",
            "report",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        value, base = row["value"], row["baseline"]
        ratio = f"{value / base:.3f}x" if base else "-"
        shown = f"{base:.3f}" if base is not None else "-"
        print(f"{row['benchmark']:<66} {value:>8.3f} {shown:>8} {ratio:>8}  {row['target']}")
