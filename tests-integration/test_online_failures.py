"""When the W&B server fails: bounded ends, warnings that say how to sync, and no data lost.

The server is the project's own test server, run as a process that the test kills (SIGKILL, as a
crash) in the middle of a real local Flyte run and starts again on the same port and data folder.
``wandb sync`` of the run's local folder must then bring every row logged before and after the
kill to the server.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import flyte
import pytest
from _online_tasks import timed_logging
from _plugin_helpers import run_local
from servers import WandbTestServer

from flyteplugins.wandb import (
    WandbOfflineFallback,
    WandbServerUnreachable,
    WandbUploadIncomplete,
    get_wandb_run,
    wandb_config,
    wandb_init,
)
from flyteplugins.wandb._resilience import CLIENT_BOUNDS, env_var

pytestmark = pytest.mark.online

env = flyte.TaskEnvironment(name="online_failures")
WANDB_CLI = str(Path(sys.executable).parent / "wandb")
# A local Flyte run needs a moment after the task's code returns (outputs, controller).
MARGIN_S = 8.0

_victim: list[WandbTestServer] = []
_marks: dict[str, float] = {}


@wandb_init(project="online-kill", entity="ent")
@env.task
def killed_mid_run(before: int, after: int) -> dict[str, Any]:
    run = get_wandb_run()
    assert run is not None
    for i in range(before):
        run.log({"x": i})
    assert run.settings.mode  # waits for the client's start (behind this code by default)
    _victim[0].kill()
    worst = timed_logging(run, range(before, before + after))
    _marks["code_returned"] = time.monotonic()
    return {
        "id": run.id,
        "dir": run.settings.sync_dir,
        "worst_log_s": worst,
        "finish_timeout": run.settings.finish_timeout,
    }


ran: list[str] = []


@wandb_init(project="online-down", entity="ent")
@env.task
def never_starts() -> int:
    ran.append("user code")
    return 1


@wandb_init(project="online-fallback", entity="ent")
@env.task
def falls_back() -> dict[str, Any]:
    run = get_wandb_run()
    assert run is not None
    for i in range(3):
        run.log({"y": i})
    return {"id": run.id, "dir": run.settings.sync_dir, "mode": run.settings.mode}


def _without_client_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop the test environment's retry limits so the plugin's own defaults apply."""
    for name in (*CLIENT_BOUNDS, "finish_timeout"):
        monkeypatch.delenv(env_var(name), raising=False)


def _sync_command(message: str, run_dir: str) -> list[str]:
    marker = "upload it with: " if "upload it with: " in message else "back: "
    command = shlex.split(message.split(marker, 1)[1].strip())
    assert command[0] == "wandb" and command[1] == "sync"
    assert command[-1] == run_dir
    return [WANDB_CLI, *command[1:]]


def _incomplete(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, WandbUploadIncomplete)]


def test_server_killed_mid_run_bounded_end_warning_and_sync_recovers_every_row(
    make_wandb_server: Any, wandb_online_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``finish_timeout`` from ``wandb_config`` bounds the end (short here: the plugin's 30 s
    default is applied to the client's settings as test_resilience checks)."""
    server: WandbTestServer = make_wandb_server()
    wandb_online_at(server)
    _without_client_bounds(monkeypatch)  # the plugin's own bounds, not the tests' short ones
    _victim[:] = [server]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = run_local(
            killed_mid_run,
            5,
            5,
            name="online-kill",
            custom_context=dict(wandb_config(finish_timeout=3)),
        )
    ended_after = time.monotonic() - _marks["code_returned"]

    assert out["finish_timeout"] == 3
    assert ended_after <= 3 + MARGIN_S, ended_after
    assert out["worst_log_s"] < 0.5  # logging never waited for the dead server
    (message,) = _incomplete(record)
    assert out["id"] in message and server.url in message
    assert "history rows" in message  # what was not uploaded
    assert "finish_timeout=3 s" in message
    assert f"wandb sync --no-skip-online {out['dir']}" in message

    server.start()  # same port, same data folder
    done = subprocess.run(
        _sync_command(message, out["dir"]), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    rec = server.run("ent", "online-kill", out["id"])
    assert [r["x"] for r in rec["history"]] == list(range(10))
    assert rec["state"] == "finished"


def test_server_down_at_start_fails_fast_naming_the_host(
    make_wandb_server: Any, wandb_online_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: WandbTestServer = make_wandb_server()
    server.stop()  # nothing listens on its port any more
    wandb_online_at(server)
    _without_client_bounds(monkeypatch)  # the plugin's own retry bounds
    ran.clear()
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        run_local(never_starts, name="online-down")
    elapsed = time.monotonic() - started
    # docs/server-failures.md: about 25 s with the defaults (plus the local run's start and end)
    assert elapsed < 30 + 10, elapsed
    text = str(caught.value)
    assert server.url in text
    assert "could not be reached" in text and "offline_fallback=True" in text
    assert ran == []  # the task's code never ran against a half-started run
    # local Flyte runs re-raise the task's error as RuntimeUserError, keeping its type's name
    assert "WandbServerUnreachable" in f"{getattr(caught.value, 'code', '')} {text}" or isinstance(
        caught.value, WandbServerUnreachable
    )


def test_server_down_named_only_by_the_settings_file_is_named_in_the_error(
    make_wandb_server: Any, wandb_online_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server comes from the client's settings file (as `wandb login --host` writes it):
    the error names that server, not a host the plugin assumed."""
    server: WandbTestServer = make_wandb_server()
    server.stop()
    home = wandb_online_at(server)
    monkeypatch.delenv("WANDB_BASE_URL")
    config_dir = Path(os.environ["WANDB_CONFIG_DIR"])
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "settings").write_text(f"[default]\nbase_url = {server.url}\n")
    # the test environment's short retry bounds (its point is the error's text, not how long
    # the plugin's defaults wait: test_server_down_at_start_fails_fast_naming_the_host)
    ran.clear()
    with pytest.raises(Exception) as caught:
        run_local(never_starts, name="online-down-file")
    text = str(caught.value)
    assert server.url in text and "could not be reached" in text
    assert "wandb.ai" not in text and "forge" not in text
    assert ran == []
    assert home.exists()


def test_offline_fallback_logs_locally_and_syncs_later(
    make_wandb_server: Any, wandb_online_at: Any
) -> None:
    server: WandbTestServer = make_wandb_server()
    server.stop()
    wandb_online_at(server)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = run_local(
            falls_back,
            name="online-fallback",
            custom_context=dict(wandb_config(offline_fallback=True)),
        )
    assert out["mode"] == "offline"
    # Its own class and words: falling back at start is not an incomplete upload.
    assert _incomplete(record) == []
    (message,) = [str(w.message) for w in record if w.category is WandbOfflineFallback]
    assert message.startswith(f"W&B run {out['id']} is logging offline: the server {server.url}")
    assert "could not be reached when it started" in message and "offline_fallback=True" in message
    assert f"kept in {out['dir']}; upload it when the server is back: wandb sync " in message
    assert list(Path(out["dir"]).glob("run-*.wandb"))

    server.start()
    done = subprocess.run(
        _sync_command(message, out["dir"]), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    rec = server.run("ent", "online-fallback", out["id"])
    assert [r["y"] for r in rec["history"]] == [0, 1, 2]
    assert rec["state"] == "finished"
