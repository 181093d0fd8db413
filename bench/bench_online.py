"""Benchmarks of server failures: how long a task holds its pod when the W&B server is gone.

Each figure runs in its own Python process against the project's loopback test server
(``tests-integration/wandb_server``), next to its baseline: the bare wandb client with its own
defaults doing the same thing. A baseline that does not end within ``BENCH_ONLINE_CAP_S``
seconds (default 120) is reported as that cap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests-integration"
CAP_S = float(os.environ.get("BENCH_ONLINE_CAP_S", "120"))

_PROLOGUE = """
import json, os, sys, tempfile, time, warnings
from pathlib import Path
import servers
base = Path(tempfile.mkdtemp(prefix="bench-online-"))
server = servers.WandbTestServer(base / "data")
server.start()
env = servers.client_env(server.url, base / "home")
for key in [k for k in env if k.startswith("WANDB__") or k == "WANDB_INIT_TIMEOUT"]:
    del env[key]  # no test limits: the plugin's bounds, or the bare client's defaults
os.environ.update(env)
warnings.simplefilter("ignore")
"""

_PLUGIN_KILLED = """
import flyte
from flyteplugins.wandb import get_wandb_run, wandb_init
marks = {}
@wandb_init(project="bench-online", entity="ent")
@flyte.TaskEnvironment(name="bench_online").task
def train() -> int:
    run = get_wandb_run()
    for i in range(20):
        run.log({"x": i})
    assert run.settings.mode  # the client is up (by default it starts behind this code)
    server.kill()
    for i in range(20, 40):
        run.log({"x": i})
    marks["returned"] = time.monotonic()
    return 1
flyte.init()
flyte.with_runcontext(mode="local", name="bench-online").run(train)
print(json.dumps({"seconds": time.monotonic() - marks["returned"]}))
"""

_BARE_KILLED = """
import wandb
run = wandb.init(project="bench-online", entity="ent", id="bare")
for i in range(20):
    run.log({"x": i})
server.kill()
for i in range(20, 40):
    run.log({"x": i})
start = time.monotonic()
run.finish()
print(json.dumps({"seconds": time.monotonic() - start}))
"""

_PLUGIN_DOWN = """
server.stop()
from flyteplugins.wandb import wandb_init
@wandb_init(project="bench-online", entity="ent", id="down")
def train() -> int:
    return 1
start = time.monotonic()
try:
    train()
except Exception:
    pass
print(json.dumps({"seconds": time.monotonic() - start}))
"""

_BARE_DOWN = """
server.stop()
import wandb
start = time.monotonic()
try:
    wandb.init(project="bench-online", entity="ent", id="down")
except Exception:
    pass
print(json.dumps({"seconds": time.monotonic() - start}))
"""


def _seconds(body: str) -> float:
    """Seconds the scenario reports, or the cap when it did not end in time."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROLOGUE + body],
            cwd=TESTS,
            env=environ,
            capture_output=True,
            text=True,
            timeout=CAP_S + 60,
        )
    except subprocess.TimeoutExpired:
        return CAP_S
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"scenario failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return min(float(json.loads(lines[-1])["seconds"]), CAP_S)


def run() -> list[dict[str, Any]]:
    return [
        {
            "benchmark": "task end after its code returned, server killed mid-run",
            "value": _seconds(_PLUGIN_KILLED),
            "baseline": _seconds(_BARE_KILLED),
            "unit": "s",
            "target": "<= 30 s finish_timeout (+ local run overhead); bare client: until uploaded",
        },
        {
            "benchmark": "error when the server is down at start",
            "value": _seconds(_PLUGIN_DOWN),
            "baseline": _seconds(_BARE_DOWN),
            "unit": "s",
            "target": "< 60 s, naming the host",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
