"""Benchmark of the per-call module globals: ``wandb.log`` inside a task vs ``run.log``.

Inside a ``@wandb_init`` task ``wandb.log`` is resolved per call (the call's run, looked up in
the task's context) instead of being a process-wide attribute. Measured in one real local Flyte
task with the real client offline: each iteration times one ``wandb.log(row)`` and one
``run.log(row)`` (in alternating order), each call on its own; the figures are the medians over
all calls, and the added cost is the difference of the two medians.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from typing import Any

CALLS = int(os.environ.get("BENCH_GLOBALS_CALLS", "100000"))


def _measure(calls: int) -> dict[str, float]:
    import time

    import flyte
    import wandb

    from flyteplugins.wandb import get_wandb_run, wandb_init

    env = flyte.TaskEnvironment(name="bench_globals")

    @wandb_init(project="bench-globals", entity="bench")
    @env.task
    def logs(calls: int) -> dict[str, float]:
        run = get_wandb_run()
        assert run is not None and wandb.run is run
        clock = time.perf_counter_ns
        via_module: list[int] = []
        direct: list[int] = []
        row = {"loss": 0.5}
        for i in range(calls):
            if i % 2:
                t0 = clock()
                wandb.log(row)
                t1 = clock()
                run.log(row)
                t2 = clock()
                via_module.append(t1 - t0)
                direct.append(t2 - t1)
            else:
                t0 = clock()
                run.log(row)
                t1 = clock()
                wandb.log(row)
                t2 = clock()
                direct.append(t1 - t0)
                via_module.append(t2 - t1)
        # the lookup alone, which is all that differs between the two calls
        lookups: list[int] = []
        bound: list[int] = []
        for _ in range(calls):
            t0 = clock()
            wandb.log  # noqa: B018
            t1 = clock()
            run.log  # noqa: B018
            t2 = clock()
            lookups.append(t1 - t0)
            bound.append(t2 - t1)
        return {
            "module": statistics.median(via_module) / 1000,
            "direct": statistics.median(direct) / 1000,
            "lookup": statistics.median(lookups) / 1000,
            "attribute": statistics.median(bound) / 1000,
        }

    flyte.init()
    return dict(flyte.with_runcontext(mode="local", name="bench").run(logs, calls).outputs()[0])


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        for key in [k for k in os.environ if k.startswith("WANDB_")]:
            del os.environ[key]
        os.environ.update(
            WANDB_MODE="offline",
            WANDB_SILENT="true",
            WANDB_DIR=tmp,
            WANDB_CONFIG_DIR=os.path.join(tmp, ".config"),
            WANDB_CACHE_DIR=os.path.join(tmp, ".cache"),
        )
        os.chdir(tmp)
        m = _measure(CALLS)
    n = f"{CALLS:,}".replace(",", " ")
    return [
        {
            "benchmark": f"globals: wandb.log in a task, median of {n} calls (vs run.log)",
            "value": m["module"],
            "baseline": m["direct"],
            "unit": "µs",
            "target": "<= baseline + 1 µs",
        },
        {
            "benchmark": "globals: added cost per wandb.log call (median difference)",
            "value": m["module"] - m["direct"],
            "baseline": None,
            "unit": "µs",
            "target": "<= 1 µs",
        },
        {
            "benchmark": "globals: resolving wandb.log in a task (vs the attribute run.log)",
            "value": m["lookup"],
            "baseline": m["attribute"],
            "unit": "µs",
            "target": "<= baseline + 1 µs",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
