"""Benchmarks of offline runs synced by Flyte and of rewinding a resumed run.

Each scenario runs in a Python process of its own against a fresh loopback test server
(``tests-integration/wandb_server``):

* sync: the two offline run folders of a 2-rank shared-mode job (10^4 steps per rank, written
  by the real client as the ranks of a ``sync="after"`` task write them) uploaded by the
  plugin's sync task in a Flyte local run (the folders in the Flyte run's storage layout:
  download, the client's ``wandb sync``, the markers copied back), next to ``wandb sync`` of the
  same two folders by hand;
* rewind: a resumed decorated call that rewinds (``rewind_to``) before logging 10 rows, next to
  the same resumed call without the rewind.
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
STEPS = int(os.environ.get("BENCH_SYNC_STEPS", "10000"))

_PROLOGUE = """
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request, warnings
from pathlib import Path
import servers
base = Path(tempfile.mkdtemp(prefix="bench-sync-"))
server = servers.WandbTestServer(base / "data")
server.start()
os.environ.update(servers.client_env(server.url, base / "home"))
warnings.simplefilter("ignore")
STEPS = int(sys.argv[1])

def offline_job(root):
    \"\"\"The two offline folders of a 2-rank shared run, each rank STEPS rows.\"\"\"
    code = '''
import sys, wandb
rank, steps = int(sys.argv[1]), int(sys.argv[2])
s = wandb.Settings(mode="offline", x_primary=rank == 0, x_label=f"rank{rank}",
                   x_sync_dir_suffix=f"rank{rank}", x_update_finish_state=rank == 0)
run = wandb.init(project="bench-sync", entity="ent", id="job", settings=s)
for i in range(steps):
    run.log({"loss": 1.0 / (i + 1), "rank": rank})
run.finish()
'''
    env = {**os.environ, "WANDB_DIR": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(r), str(STEPS)], env=env)
             for r in (0, 1)]
    assert all(p.wait() == 0 for p in procs)
    return sorted((Path(root) / "wandb").glob("offline-run-*"))

def rows():
    with urllib.request.urlopen(server.url + "/_test/runs/ent/bench-sync/job") as r:
        return len(json.loads(r.read())["history"])
"""

_BY_HAND = """
folders = offline_job(base / "job")
start = time.monotonic()
subprocess.run([sys.executable, "-m", "wandb", "sync", *map(str, folders)], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
seconds = time.monotonic() - start
assert rows() == 2 * STEPS, rows()
print(json.dumps({"seconds": seconds}))
"""

_SYNC_TASK = """
import flyte, flyte.io
from flyteplugins.wandb import wandb_sync_task
from flyteplugins.wandb._sync import METADATA_FILE
folders = offline_job(base / "job")
store = base / "flyte-run" / "wandb-offline"
for i, folder in enumerate(folders):  # the layout sync="after" tasks write
    target = store / "job" / f"{i}-1" / folder.name
    shutil.copytree(folder, target)
    (target / METADATA_FILE).write_text(json.dumps({"run_id": "job", "host": server.url}))
wandb_sync = wandb_sync_task(flyte.TaskEnvironment(name="bench_sync"))
flyte.init()
start = time.monotonic()
out = flyte.with_runcontext(mode="local", name="bench-sync").run(
    wandb_sync, flyte.io.Dir(path=str(store))).outputs()[0]
seconds = time.monotonic() - start
assert len(out["synced"]) == 2 and rows() == 2 * STEPS, (out, rows())
print(json.dumps({"seconds": seconds}))
"""

_RESUMED_CALL = """
import wandb
from flyteplugins.wandb import rewind_to, wandb_init
REWIND = sys.argv[2] == "rewind"
first = wandb.init(project="bench-rewind", entity="ent", id="rw")
for i in range(1000):
    first.log({"x": i})
first.finish()
@wandb_init(project="bench-rewind", entity="ent", id="rw")
def resumed():
    run = rewind_to(500) if REWIND else wandb.run
    for i in range(10):
        run.log({"x": i})
start = time.monotonic()
resumed()
print(json.dumps({"seconds": time.monotonic() - start}))
"""


def _seconds(body: str, *args: str) -> float:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", _PROLOGUE + body, str(STEPS), *args],
        cwd=TESTS,
        env=environ,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"scenario failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return float(json.loads(lines[-1])["seconds"])


def run() -> list[dict[str, Any]]:
    return [
        {
            "benchmark": f"sync of a 2-rank offline run ({STEPS} steps per rank): sync task "
            "vs `wandb sync` of the same folders by hand",
            "value": _seconds(_SYNC_TASK),
            "baseline": _seconds(_BY_HAND),
            "unit": "s",
            "target": "the client's sync plus the storage copy and a Flyte local run",
        },
        {
            "benchmark": "resumed call logging 10 rows: with rewind_to(500) vs without",
            "value": _seconds(_RESUMED_CALL, "rewind"),
            "baseline": _seconds(_RESUMED_CALL, "plain"),
            "unit": "s",
            "target": "one extra finish + start of the run, once per resumed attempt",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
