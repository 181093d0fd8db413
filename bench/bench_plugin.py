"""Benchmarks of the plugin: overhead of @wandb_init, import cost, silent ranks.

Every figure is a whole Python process, measured alternately with its baseline in the same call
(median of several runs), so the comparison holds on a busy machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

REPEAT = int(os.environ.get("BENCH_PLUGIN_REPEAT", "5"))

_TASK_PROLOGUE = """
import flyte
env = flyte.TaskEnvironment(name="bench")
"""

#: Seconds of the task's own set-up (data, model, process group) in the "set-up" rows; a sleep
#: stands in for it (it leaves the interpreter free, as waiting on I/O or a rendezvous does).
SETUP_S = float(os.environ.get("BENCH_PLUGIN_SETUP_S", "1.0"))


def _with_plugin(setup_s: float = 0.0) -> str:
    """The 100-step task with ``@wandb_init``, after ``setup_s`` of its own set-up."""
    return (
        _TASK_PROLOGUE
        + f"""
import time
from flyteplugins.wandb import get_wandb_run, wandb_init

@wandb_init(project="bench")
@env.task
def train() -> int:
    run = get_wandb_run()
    time.sleep({setup_s})
    for i in range(100):
        run.log({{"loss": 1.0 / (i + 1), "step": i}})
    return 100

flyte.init()
flyte.with_runcontext(mode="local", name="bench").run(train)
"""
    )


def _by_hand(setup_s: float = 0.0) -> str:
    """The same task written by hand: ``wandb.init`` first (blocking), then the set-up."""
    return (
        _TASK_PROLOGUE
        + f"""
import time
import wandb

@env.task
def train() -> int:
    ctx = flyte.ctx()
    run = wandb.init(project="bench", id=f"{{ctx.action.run_name}}-{{ctx.action.name}}",
                     resume="allow", reinit="create_new")
    try:
        time.sleep({setup_s})
        for i in range(100):
            run.log({{"loss": 1.0 / (i + 1), "step": i}})
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish(exit_code=0)
    return 100

flyte.init()
flyte.with_runcontext(mode="local", name="bench").run(train)
"""
    )


_WITH_PLUGIN = _with_plugin()
_BY_HAND = _by_hand()

_SILENT_RANK = (
    _TASK_PROLOGUE
    + """
import json, sys
from flyteplugins.wandb import get_wandb_run, wandb_init

@wandb_init
@env.task
def train() -> bool:
    return get_wandb_run() is None

flyte.init()
flyte.with_runcontext(mode="local", name="bench").run(train)
print(json.dumps({"wandb_imported": "wandb" in sys.modules}))
"""
)


def _env(tmp: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=tmp,
        WANDB_CONFIG_DIR=os.path.join(tmp, ".config"),
        WANDB_CACHE_DIR=os.path.join(tmp, ".cache"),
    )
    env.update(extra)
    return env


def _time(code: str, env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def _paired(a: str, b: str, repeat: int = REPEAT) -> tuple[float, float]:
    """Median wall times of ``a`` and ``b``, run alternately."""
    ta: list[float] = []
    tb: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp)
        _time(b, env, tmp)  # warm the file cache once for both
        for _ in range(repeat):
            ta.append(_time(a, env, tmp))
            tb.append(_time(b, env, tmp))
    return statistics.median(ta), statistics.median(tb)


def _silent_rank_imports_wandb() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp, RANK="1", WORLD_SIZE="2")
        out = subprocess.run(
            [sys.executable, "-c", _SILENT_RANK],
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    return bool(json.loads(line)["wandb_imported"])


def run() -> list[dict[str, Any]]:
    task, by_hand = _paired(_WITH_PLUGIN, _BY_HAND)
    setup, setup_hand = _paired(_with_plugin(SETUP_S), _by_hand(SETUP_S))
    plugin_import, flyte_import = _paired("import flyteplugins.wandb", "import flyte", REPEAT + 2)
    imported = _silent_rank_imports_wandb()
    return [
        {
            "benchmark": "plugin: local task, 100 steps offline (vs wandb.init/finish by hand, "
            "both blocking)",
            "value": task,
            "baseline": by_hand,
            "unit": "s",
            "target": "<= 1.02x baseline",
        },
        {
            "benchmark": f"plugin: same after {SETUP_S:g} s of the task's own set-up (vs by hand)",
            "value": setup,
            "baseline": setup_hand,
            "unit": "s",
            "target": "<= 1.02x baseline",
        },
        {
            "benchmark": "plugin: import flyteplugins.wandb (vs import flyte)",
            "value": plugin_import,
            "baseline": flyte_import,
            "unit": "s",
            "target": "<= 1.10x baseline",
        },
        {
            "benchmark": "plugin: RANK=1 WORLD_SIZE=2 auto/global imports wandb",
            "value": 1.0 if imported else 0.0,
            "baseline": None,
            "unit": "bool",
            "target": "== 0 (never imported)",
        },
    ]


if __name__ == "__main__":
    for row in run():
        base = row["baseline"]
        ratio = f"{row['value'] / base:.3f}x" if base else "-"
        print(f"{row['benchmark']:<72} {row['value']:>8.3f} {base or 0:>8.3f} {ratio:>8}")
