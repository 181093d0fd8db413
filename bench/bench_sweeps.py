"""Benchmarks of the sweeps distribution.

* Offline sweep throughput: trials per minute of a local-controller grid sweep whose objective is
  CPU-bound (pure Python, calibrated to about 1 s per trial on an idle core), with 1, 2 and 4
  parallel agents (``run_parallel_agents``: Flyte child tasks of a real local run, each agent
  running its trials in a worker process of its own; every trial a real offline W&B run).
  Two rates per agent count: the *steady* rate, the extra trials a longer sweep runs per extra
  minute (a sweep of ``2N`` trials against one of ``N``: ``N / (t(2N) - t(N))``, so the fixed
  start-up cancels out), which is what parallel agents buy a real sweep of hundreds of trials;
  and the *whole-sweep* rate of ``N`` trials, start-up included. The 2- and 4-agent figures are
  reported against the 1-agent figure measured in the same call (target on this 2-core machine:
  steady rate >= 1.8x for 2 agents); ``run_agent`` in the task itself (no worker process) is
  reported beside them. The fixed start-up (``t(N)`` minus ``N`` steady trials) is printed as a
  row of its own: it bounds the whole-sweep ratio (Amdahl) and is mostly the sweep engine's
  import (scipy, ~2 s) and each worker's interpreter, flyte and wandb imports (~2.5 s).
* Log download: 200 files of one run from the project's loopback W&B server, parallel (8 workers)
  against sequential (1 worker), measured alternately (target: parallel <= 0.3x sequential).

Each sweep figure is one fresh Python process (median of ``BENCH_SWEEPS_REPEAT`` runs), timed
inside the process around the Flyte run, so interpreter start-up and imports are excluded (the
agents' worker processes start inside the timed run, so their start-up is included).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPEAT = int(os.environ.get("BENCH_SWEEPS_REPEAT", "3"))
TRIALS = int(os.environ.get("BENCH_SWEEPS_TRIALS", "24"))
TRIAL_SECONDS = float(os.environ.get("BENCH_SWEEPS_TRIAL_SECONDS", "1.0"))
FILES = 200

# A module, not ``python -c``: the agents' worker processes import the objective from it.
_SWEEP_MODULE = """
import json, os, sys, time

import flyte
import wandb
from flyteplugins.wandb import wandb_config, wandb_init
from flyteplugins.wandb_sweeps import (
    run_agent, run_agent_work, run_parallel_agents, wandb_sweep, wandb_sweep_config,
)

env = flyte.TaskEnvironment(name="bench_sweeps")
SPIN = int(os.environ["BENCH_SPIN"])


def spin(n):
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1000003
    return acc


@wandb_init
def objective():
    x = wandb.config.x
    spin(SPIN)  # CPU-bound: about TRIAL_SECONDS of pure Python
    wandb.log({"loss": (x - 0.3) ** 2})


@env.task
def agent(work: str) -> str:
    return run_agent_work(work, objective)


@wandb_sweep
@env.task
async def parallel(agents: int) -> int:
    result = await run_parallel_agents(agent, agents)
    return sum(t["state"] == "finished" for t in result["trials"])


@wandb_sweep
@env.task
def in_task() -> int:
    result = run_agent(function=objective)
    return sum(t["state"] == "finished" for t in result["trials"])


if __name__ == "__main__":
    agents, trials = int(sys.argv[1]), int(sys.argv[2])
    grid = [round(i / trials, 6) for i in range(trials)]
    ctx = {**wandb_config(project="bench"),
           **wandb_sweep_config(method="grid", metric={"name": "loss", "goal": "minimize"},
                                parameters={"x": {"values": grid}})}
    flyte.init()
    task, args = (in_task, ()) if agents == 0 else (parallel, (agents,))
    start = time.perf_counter()
    run = flyte.with_runcontext(mode="local", custom_context=ctx).run(task, *args)
    finished = run.outputs()[0]
    elapsed = time.perf_counter() - start
    assert finished == trials, (finished, trials)
    print(json.dumps({"seconds": elapsed}))
"""

_CALIBRATE = """
import sys, time
def spin(n):
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1000003
    return acc
n = 200_000
while True:
    start = time.process_time()
    spin(n)
    took = time.process_time() - start
    if took > 0.2:
        break
    n *= 2
print(int(n * float(sys.argv[1]) / took))
"""


def _offline_env(tmp: str) -> dict[str, str]:
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_DIR": tmp,
        "WANDB_CONFIG_DIR": str(Path(tmp) / ".config"),
        "WANDB_CACHE_DIR": str(Path(tmp) / ".cache"),
        "WANDB_SILENT": "true",
    }


def _spin_for(seconds: float) -> int:
    """Loop iterations of the objective that take ``seconds`` of CPU time on one core."""
    out = subprocess.run(
        [sys.executable, "-c", _CALIBRATE, str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(out.stdout.strip())


def _sweep_seconds(agents: int, spin: int, trials: int) -> float:
    """One sweep of ``trials`` trials (``agents`` parallel agents; 0: ``run_agent`` in the task)."""
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as tmp:
        module = Path(tmp) / "bench_sweep_job.py"
        module.write_text(_SWEEP_MODULE)
        env = {**_offline_env(tmp), "BENCH_SPIN": str(spin)}
        out = subprocess.run(
            [sys.executable, str(module), str(agents), str(trials)],
            env=env, cwd=tmp, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def _sweep_rows() -> list[dict[str, Any]]:
    spin = _spin_for(TRIAL_SECONDS)
    both = (TRIALS, 2 * TRIALS)
    sizes = {0: (TRIALS,), 1: both, 2: both, 4: both}
    times: dict[tuple[int, int], list[float]] = {
        (agents, n): [] for agents, ns in sizes.items() for n in ns
    }
    for _ in range(REPEAT):
        for agents, n in times:  # alternate, so load changes hit every variant alike
            times[(agents, n)].append(_sweep_seconds(agents, spin, n))
    t = {key: statistics.median(v) for key, v in times.items()}
    whole = {a: TRIALS / t[(a, TRIALS)] * 60 for a in sizes}
    steady = {a: TRIALS / (t[(a, 2 * TRIALS)] - t[(a, TRIALS)]) * 60 for a in sizes if a}
    name = f"offline grid sweep, CPU-bound trials (~{TRIAL_SECONDS:g} s)"

    def row(what: str, value: float, baseline: float | None, unit: str, target: str) -> Any:
        return {
            "benchmark": f"{name}, {what}",
            "value": round(value, 1),
            "baseline": None if baseline is None else round(baseline, 1),
            "unit": unit,
            "target": target,
        }

    rows = [row("steady, 1 agent", steady[1], None, "trials/min", "reference")]
    rows.append(row("steady, 2 agents", steady[2], steady[1], "trials/min", ">= 1.8x 1 agent"))
    rows.append(row("steady, 4 agents", steady[4], steady[1], "trials/min", "reported (2 cores)"))
    rows.append(
        row(f"{TRIALS} trials whole, run_agent in task", whole[0], None, "trials/min", "reference")
    )
    rows.append(row(f"{TRIALS} trials whole, 1 agent", whole[1], None, "trials/min", "reference"))
    for agents in (2, 4):
        rows.append(
            row(
                f"{TRIALS} trials whole, {agents} agents",
                whole[agents],
                whole[1],
                "trials/min",
                "reported: start-up bounds it",
            )
        )
    for agents in (1, 2):
        fixed = t[(agents, TRIALS)] - TRIALS / steady[agents] * 60
        rows.append(row(f"fixed start-up, {agents} agent(s)", fixed, None, "s", "reported"))
    return rows


def _download_rows() -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests-integration"))
    from servers import WandbTestServer, client_env

    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        root = Path(tmp)
        server = WandbTestServer(root / "server")
        server.start()
        saved = dict(os.environ)
        try:
            os.environ.update(client_env(server.url, root / "home"))
            import wandb

            from flyteplugins.wandb_sweeps import download_run

            wandb.teardown()
            run = wandb.init(project="bench-dl", entity="ent", id="files200", reinit="create_new")
            src = root / "src"
            src.mkdir()
            for i in range(FILES):
                (src / f"f{i:03d}.txt").write_bytes(os.urandom(4096))
            run.save(str(src / "*.txt"), base_path=str(src), policy="now")
            run.finish()
            par: list[float] = []
            seq: list[float] = []
            for i in range(REPEAT):
                for workers, bucket in ((8, par), (1, seq)):
                    start = time.perf_counter()
                    result = download_run(
                        "files200", project="bench-dl", entity="ent",
                        target=root / f"out-{workers}-{i}", workers=workers, progress=False,
                    )  # fmt: skip
                    bucket.append(time.perf_counter() - start)
                    got = len([f for f in result.files if f.startswith("files/f")])
                    assert result.ok and got == FILES, (result.failed, got)
            wandb.teardown()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            server.stop()
    p, s = statistics.median(par), statistics.median(seq)
    return [
        {
            "benchmark": f"download {FILES} files, sequential",
            "value": round(s, 3),
            "baseline": None,
            "unit": "s",
            "target": "reference",
        },
        {
            "benchmark": f"download {FILES} files, 8 workers",
            "value": round(p, 3),
            "baseline": round(s, 3),
            "unit": "s",
            "target": "<= 0.3x sequential",
        },
    ]


def run() -> list[dict[str, Any]]:
    return _sweep_rows() + _download_rows()


if __name__ == "__main__":
    for row in run():
        ratio = ""
        if row["baseline"]:
            ratio = f"  ({row['value'] / row['baseline']:.2f}x)"
        print(
            f"{row['benchmark']:<40} {row['value']:>10} {row['unit']:<11}{ratio}  {row['target']}"
        )
