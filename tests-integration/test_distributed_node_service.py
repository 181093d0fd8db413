"""One wandb-core service per node (``_distributed.NodeService``), with real processes.

* A real 1-node x 4-process Elastic job in ``new`` mode (four runs): every rank's run is
  complete, and the job started exactly one service, a detached one (no rank owns it), instead
  of one per rank (the default; ``FLYTEPLUGINS_WANDB_NODE_SERVICE=0``: one per rank). In
  ``shared`` mode each writer keeps its own service (wandb-core keeps one stream per run id and
  refuses a second writer of the same id): the runs are complete and no service is left behind.
* A detached service outlives the process that started it: a writer attached to it finishes
  its run completely after that process was killed (SIGKILL), where an owned service takes the
  writer's data with it.
* Leaving the node's service (``wandb.teardown()``) keeps the session's credentials: a key given
  to ``wandb.login`` that no netrc file holds is still the process's when the run has ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _services import services, stop
from torchrun_harness import Case, launch

from flyteplugins.wandb._records import read_runs

pytestmark = pytest.mark.timeout(600)

STEPS = 5


def _offline(root: Path) -> dict[str, str]:
    return {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / ".config"),
        "WANDB_CACHE_DIR": str(root / ".cache"),
        "WANDB_SILENT": "true",
    }


@pytest.mark.parametrize(
    ("run_mode", "setting"), [("new", None), ("shared", None), ("new", "0")], ids=str
)
def test_the_ranks_of_a_node_share_one_detached_service(
    tmp_path: Path, run_mode: str, setting: str | None
) -> None:
    """By default; ``FLYTEPLUGINS_WANDB_NODE_SERVICE=0``: every rank its own, as shared mode."""
    env = _offline(tmp_path)
    if setting is not None:
        env["FLYTEPLUGINS_WANDB_NODE_SERVICE"] = setting
    one_service = run_mode == "new" and setting is None
    seen: dict[int, bool] = {}  # every service seen while the job ran: pid -> detached
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update((s.pid, s.detached) for s in services(tmp_path))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        job = launch(
            tmp_path,
            [Case(name="svc", run_mode=run_mode, steps=STEPS)],
            nnodes=1,
            nproc_per_node=4,
            run_prefix=f"svc-{run_mode}",
            env=env,
        )
    finally:
        done.set()
        watcher.join()
    found = services(tmp_path)
    try:
        assert job.returncodes == [0], job.logs
        assert all(r["ok"] for r in job.case("svc")), job.case("svc")
        # The ranks' own (owned) services died with them; a shared one lives on until its
        # idle timeout, and it is the only one the job started.
        assert [s.detached for s in found] == ([True] if one_service else [])
        if one_service:
            assert seen == {found[0].pid: True}  # no rank started a service of its own
        else:
            assert sorted(seen.values()) == [False] * 4  # one per rank, owned by it
        runs = [r for r in read_runs(tmp_path) if r.run_id]
        assert len(runs) == 4  # four runs (new) or the four writers' files of one run (shared)
        for rec in runs:
            assert len(rec.metric("loss")) == STEPS, rec.path
        if run_mode == "new":
            assert len({r.run_id for r in runs}) == 4
        else:
            assert len({r.run_id for r in runs}) == 1
    finally:
        stop(found)


_STARTER = """
import sys, time
from flyteplugins.wandb import _backend
print(_backend.start_node_service(sys.argv[1]), flush=True)
time.sleep(600)
"""

_WRITER = """
import time, wandb
run = wandb.init(project="svc", reinit="create_new")
for i in range(20):
    run.log({"i": i})
    time.sleep(0.1)
run.finish()
"""


def test_a_writer_survives_the_death_of_the_process_that_started_the_service(
    tmp_path: Path,
) -> None:
    env = {**os.environ, **_offline(tmp_path)}
    env.pop("WANDB_SERVICE", None)
    starter = subprocess.Popen(
        [sys.executable, "-c", _STARTER, "30s"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert starter.stdout is not None
        token = starter.stdout.readline().strip()
        assert token.startswith("3-"), token
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER], env={**env, "WANDB_SERVICE": token}, cwd=tmp_path
        )
        time.sleep(1.0)
        os.kill(starter.pid, signal.SIGKILL)  # the rank that started the service dies
        assert writer.wait(timeout=120) == 0
    finally:
        if starter.poll() is None:
            starter.kill()
        starter.wait()
    [rec] = read_runs(tmp_path)
    assert rec.metric("i") == list(range(20)) and rec.exit_code == 0
    found = services(tmp_path)
    assert [s.detached for s in found] == [True]  # still up, for the node's other ranks
    stop(found)


_LOGGED_IN_RANK = """
import json, sys
import wandb
from wandb.sdk import wandb_setup
from wandb.sdk.lib import wbauth
from flyteplugins.wandb import _backend, _client

host, key = sys.argv[1], sys.argv[2]
# NETRC names a folder: the key lives in the session only
wandb.login(key=key, host=host, verify=False)


class OneNode:  # the node's service, without the job's store: this process starts it
    def token(self, start):
        return start("30s")


request = _backend.InitRequest(
    server=_client.Server(api_url=host, app_url=host, source="test"),
    kwargs={"project": "p", "mode": "offline"},
    node_service=OneNode(),
)
run = _backend.init_run(request)
attached = request.attached
run.log({"i": 1})
run.finish()
_backend.detach(request)
setup = wandb_setup._singleton
creds = wbauth.session_credentials(host=host)
print(json.dumps({
    "attached": attached,
    "setup_left": setup is not None,  # none: the next run reads the settings afresh
    "key_kept": creds is not None and creds.api_key == key,
}))
"""


def test_leaving_the_node_service_keeps_a_key_given_to_wandb_login(tmp_path: Path) -> None:
    """``wandb.teardown()`` (how a process leaves the node's service) forgets the session's
    credentials; a key the user gave ``wandb.login`` that could not be saved to a netrc file is
    the process's only copy, so the plugin gives it back."""
    key = "k" * 40
    env = {**os.environ, **_offline(tmp_path), "NETRC": str(tmp_path)}  # a folder: unwritable
    # online as far as the login knows (offline, wandb.login keeps no key); the run is offline
    for name in ("WANDB_MODE", "WANDB_SERVICE", "WANDB_API_KEY"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", _LOGGED_IN_RANK, "http://127.0.0.1:9", key],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert key not in out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"attached": True, "setup_left": False, "key_kept": True}
    [rec] = read_runs(tmp_path)
    assert rec.metric("i") == [1] and rec.exit_code == 0
    found = services(tmp_path)
    assert [s.detached for s in found] == [True]
    stop(found)
