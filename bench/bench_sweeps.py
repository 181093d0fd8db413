"""Benchmarks of the sweeps distribution.

* Offline sweep throughput: trials per minute of a local-controller sweep on a trivial objective,
  with 1, 2 and 4 parallel agents (Flyte child tasks of a real local run; each trial a real
  offline W&B run). The 2- and 4-agent figures are reported against the 1-agent baseline
  measured in the same call (target: >= 1.8x for 2 agents).
* Log download: 200 files of one run from the project's loopback W&B server, parallel (8 workers)
  against sequential (1 worker), measured alternately (target: parallel <= 0.3x sequential).

Each sweep figure is one fresh Python process (median of ``BENCH_SWEEPS_REPEAT`` runs), timed
inside the process around the Flyte run, so interpreter start-up and imports are excluded.
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
TRIALS = int(os.environ.get("BENCH_SWEEPS_TRIALS", "40"))
FILES = 200

_SWEEP_SCRIPT = """
import json, sys, time
import flyte
from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb_sweeps import run_agent_work, run_parallel_agents, wandb_sweep
from flyteplugins.wandb_sweeps import wandb_sweep_config

env = flyte.TaskEnvironment(name="bench_sweeps")

@wandb_init
def objective():
    run = get_wandb_run()
    run.log({"loss": (run.config["x"] - 0.3) ** 2})

@env.task
def agent(work: str) -> str:
    return run_agent_work(work, objective)

@wandb_sweep
@env.task
async def sweep(agents: int, count: int) -> int:
    result = await run_parallel_agents(agent, agents, count)
    return sum(t["state"] == "finished" for t in result["trials"])

agents, count = int(sys.argv[1]), int(sys.argv[2])
ctx = {**wandb_config(project="bench"),
       **wandb_sweep_config(method="random", metric={"name": "loss", "goal": "minimize"},
                            parameters={"x": {"min": 0.0, "max": 1.0}})}
flyte.init()
start = time.perf_counter()
run = flyte.with_runcontext(mode="local", custom_context=ctx).run(sweep, agents, count)
finished = run.outputs()[0]
elapsed = time.perf_counter() - start
assert finished == count, (finished, count)
print(json.dumps({"seconds": elapsed}))
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


def _sweep_seconds(agents: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as tmp:
        env = _offline_env(tmp)
        out = subprocess.run(
            [sys.executable, "-c", _SWEEP_SCRIPT, str(agents), str(TRIALS)],
            env=env, cwd=tmp, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def _sweep_rows() -> list[dict[str, Any]]:
    times: dict[int, list[float]] = {1: [], 2: [], 4: []}
    for _ in range(REPEAT):
        for agents in times:  # alternate, so load changes hit every variant alike
            times[agents].append(_sweep_seconds(agents))
    per_min = {a: TRIALS / statistics.median(t) * 60 for a, t in times.items()}
    rows = [
        {
            "benchmark": "offline sweep, 1 agent",
            "value": round(per_min[1], 1),
            "baseline": None,
            "unit": "trials/min",
            "target": "reference",
        }
    ]
    for agents, target in ((2, ">= 1.8x the 1-agent rate"), (4, "more than 2 agents")):
        rows.append(
            {
                "benchmark": f"offline sweep, {agents} parallel agents",
                "value": round(per_min[agents], 1),
                "baseline": round(per_min[1], 1),
                "unit": "trials/min",
                "target": target,
            }
        )
    return rows


_WORKER_SCRIPT = """
import sys
from flyteplugins.wandb import get_wandb_run, wandb_init
from flyteplugins.wandb_sweeps import run_agent_work

@wandb_init
def objective():
    run = get_wandb_run()
    run.log({"loss": (run.config["x"] - 0.3) ** 2})

print("ready", flush=True)
work = sys.stdin.readline()
print(run_agent_work(work, objective), flush=True)
"""

_PROCESS_SCRIPT = """
import json, subprocess, sys, time
from flyteplugins.wandb_sweeps import create_local_sweep
from flyteplugins.wandb_sweeps._agent import _absorb, _local_rounds, _work

agents, count, worker = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sweep = create_local_sweep({"method": "random", "metric": {"name": "loss", "goal": "minimize"},
                            "parameters": {"x": {"min": 0.0, "max": 1.0}}}, project="bench")
procs = [subprocess.Popen([sys.executable, "-c", worker], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) for _ in range(agents)]
for p in procs:
    assert p.stdout.readline().strip() == "ready"
start = time.perf_counter()
rounds = _local_rounds(sweep, agents, count)
works = [_work(sweep, trials) for trials in rounds]
for p, w in zip(procs, works):
    p.stdin.write(w + "\\n")
    p.stdin.flush()
outputs = [p.stdout.readline() for p in procs[: len(works)]]
elapsed = time.perf_counter() - start
for p in procs:
    p.stdin.close()
    p.wait()
_absorb(sweep, outputs, works)
assert sum(t.state == "finished" for t in sweep.trials) == count
print(json.dumps({"seconds": elapsed}))
"""


def _process_seconds(agents: int) -> float:
    """Agents as separate worker processes, as on a cluster (imports done before timing)."""
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as tmp:
        env = _offline_env(tmp)
        out = subprocess.run(
            [sys.executable, "-c", _PROCESS_SCRIPT, str(agents), str(TRIALS), _WORKER_SCRIPT],
            env=env, cwd=tmp, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def _process_rows() -> list[dict[str, Any]]:
    times: dict[int, list[float]] = {1: [], 2: [], 4: []}
    for _ in range(REPEAT):
        for agents in times:
            times[agents].append(_process_seconds(agents))
    per_min = {a: TRIALS / statistics.median(t) * 60 for a, t in times.items()}
    return [
        {
            "benchmark": f"offline sweep, {a} agent process(es)",
            "value": round(per_min[a], 1),
            "baseline": None if a == 1 else round(per_min[1], 1),
            "unit": "trials/min",
            "target": "reference" if a == 1 else ">= 1.8x the 1-agent rate" if a == 2 else "-",
        }
        for a in times
    ]


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
    return _sweep_rows() + _process_rows() + _download_rows()


if __name__ == "__main__":
    for row in run():
        ratio = ""
        if row["baseline"]:
            ratio = f"  ({row['value'] / row['baseline']:.2f}x)"
        print(
            f"{row['benchmark']:<40} {row['value']:>10} {row['unit']:<11}{ratio}  {row['target']}"
        )
