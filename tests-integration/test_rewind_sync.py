"""Rewind on resume and offline runs synced by Flyte, on the project's W&B test server.

Real Flyte local runs (the local controller retries a failed attempt and stages its checkpoint),
real Elastic jobs (``torch.distributed``'s elastic agent restarting every worker), the real
wandb client online and offline, and its real ``wandb sync`` run by the plugin's sync task. The
assertions read what the server recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _rewind_jobs as jobs
import flyte
import flyte.io
import pytest
from servers import WandbTestServer, free_port
from torchrun_harness import HERE, _clean_environ

from flyteplugins.wandb import WandbRewindError, WandbSyncFailed, wandb_config, wandb_sync_task
from flyteplugins.wandb._resilience import CLIENT_BOUNDS, env_var

SYNC_TIMEOUT = 8.0


def _get(server: WandbTestServer, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        return json.loads(resp.read())


def _run(server: WandbTestServer, entity: str, project: str, run_id: str) -> dict[str, Any]:
    return _get(server, f"/_test/runs/{entity}/{project}/{run_id}")  # type: ignore[no-any-return]


def _local(task: Any, name: str, tmp: Path, *args: Any, **settings: Any) -> Any:
    flyte.init()
    run = flyte.with_runcontext(
        mode="local",
        name=f"{name}-{uuid.uuid4().hex[:8]}",  # local runs keep their files under /tmp/flyte
        raw_data_path=str(tmp / "raw" / name),
        custom_context=dict(wandb_config(**settings)),
    ).run(task, *args)
    return run.outputs()[0]


def _assert_rewound(run: dict[str, Any], *, steps: int = jobs.STEPS, rank: int = 0) -> None:
    """Each step 0..steps exactly once; the lost attempt's values up to the checkpoint, the last
    attempt's after it."""
    rows = [r for r in run["history"] if r.get("rank", rank) == rank]
    assert sorted(r["_step"] for r in rows) == list(range(steps + 1))
    assert all(r["x"] == r["_step"] for r in rows)
    assert {r["attempt"] for r in rows if r["_step"] <= jobs.CKPT} == {0}
    assert {r["attempt"] for r in rows if r["_step"] > jobs.CKPT} == {1}
    assert [w["step"] for w in run["rewinds"]] == [jobs.CKPT]


# ------------------------------------------------------------------- Flyte retries, online


def test_a_retry_rewinds_to_its_checkpoint(wandb_online: WandbTestServer, tmp_path: Path) -> None:
    jobs._attempts.clear()
    run_id = _local(jobs.preempted_train, "rewind-retry", tmp_path)
    assert jobs._attempts == [0, 1]
    run = _run(wandb_online, "ent", "rewind-online", run_id)
    _assert_rewound(run)
    # the lost attempt had logged steps 51..70: those rows were dropped, not duplicated
    assert run["rewinds"][0]["dropped"] == jobs.FAIL_AT - jobs.CKPT
    assert run["state"] == "finished"


@pytest.mark.parametrize(
    ("step", "error", "words"),
    [
        (-1, WandbRewindError, "steps start at 0"),
        (10, WandbRewindError, "past the run's last step 9"),
    ],
)
def test_a_bad_rewind_names_the_run_and_the_step(
    wandb_online: WandbTestServer, tmp_path: Path, step: Any, error: type, words: str
) -> None:
    run_id = f"bad-{tmp_path.name}"
    assert _local(jobs.rewind_bad, "bad1", tmp_path, 0, id=run_id) == run_id  # steps 0..9
    with pytest.raises(Exception) as info:
        _local(jobs.rewind_bad, "bad2", tmp_path, step, id=run_id)  # the same run, resumed
    text = str(info.value)
    assert words in text and run_id in text and str(step) in text, text
    assert error.__name__ in str(getattr(info.value, "code", "")) + type(info.value).__name__
    run = _run(wandb_online, "ent", "rewind-bad", run_id)
    assert [r["_step"] for r in run["history"]] == list(range(10)) and run["rewinds"] == []


def test_the_tab_follows_the_rewound_run(wandb_online: WandbTestServer, tmp_path: Path) -> None:
    from _report_html import parse_tab, reports_of, run_named

    run_id = f"tab-{tmp_path.name}"
    assert _local(jobs.rewind_with_tab, "tab1", tmp_path, id=run_id) == run_id  # steps 0..9
    context = dict(wandb_config(id=run_id))  # the same run, resumed, then rewound to step 4
    name, out = run_named(jobs.rewind_with_tab, prefix="tab2", custom_context=context)
    assert out == run_id
    (report,) = reports_of(name).values()
    charts = {chart.series: chart for chart in parse_tab(report).charts}
    assert charts["y"].logged == 3  # the rows logged after the rewind, to the new run object
    assert len(charts["y"].points) == 3


# ------------------------------------------------------------------- Elastic restart, online


def _elastic(tmp: Path, name: str, **case: Any) -> dict[str, Any]:
    spec = {
        "name": name,
        "out": str(tmp),
        "run_name": f"{name}-run",
        "nproc": 2,
        "max_restarts": 0,
        "steps": jobs.STEPS,
        "fail_at": None,
        "wandb": {},
        **case,
    }
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    env = {**_clean_environ(), "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    for key in ("WANDB_API_KEY", "WANDB_BASE_URL"):  # the test's server, when it has one
        if key in os.environ:
            env[key] = os.environ[key]
    log = tmp / "job.log"
    with log.open("wb") as fh:
        code = subprocess.run(
            [sys.executable, str(HERE / "_rewind_jobs.py"), str(path)],
            env=env,
            cwd=str(tmp),
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=400,
        ).returncode
    result = json.loads((tmp / "result.json").read_text()) if code == 0 else {}
    assert result.get("ok"), f"job failed ({code}): {result}\n{log.read_text()[-4000:]}"
    return result


def test_an_elastic_restart_rewinds_every_ranks_run(
    wandb_online: WandbTestServer, tmp_path: Path
) -> None:
    _elastic(
        tmp_path,
        "elastic",
        max_restarts=1,
        fail_at=jobs.FAIL_AT,
        wandb={"project": "rewind-elastic", "entity": "ent", "run_mode": "new"},
    )
    runs = [r for r in _get(wandb_online, "/_test/runs?project=rewind-elastic")]
    assert len(runs) == 2, [r["name"] for r in runs]
    for run in runs:
        rank = run["history"][0]["rank"]
        _assert_rewound(run, rank=rank)


# ------------------------------------------------------------------- offline, synced by Flyte


def test_an_offline_retry_is_rewound_when_synced_and_a_second_sync_uploads_nothing(
    wandb_online: WandbTestServer, tmp_path: Path
) -> None:
    jobs._attempts.clear()
    out = _local(jobs.train_then_sync, "rewind-offline", tmp_path)
    assert jobs._attempts == [0, 1]
    assert len(out["first"]["synced"]) == 2  # the lost attempt's folder, then the rewound one
    assert out["again"] == {"synced": [], "skipped": out["first"]["synced"]}
    run = _run(wandb_online, "ent", "rewind-offline", out["run_id"])
    _assert_rewound(run)
    assert run["state"] == "finished"


def _stream_requests(server: WandbTestServer, run_id: str) -> int:
    return sum(1 for r in _get(server, "/_test/requests") if run_id in r["path"] + r["body"])


def test_offline_shared_writers_become_one_run_and_sync_once(
    wandb_online: WandbTestServer, tmp_path: Path
) -> None:
    result = _elastic(
        tmp_path,
        "shared",
        steps=30,
        wandb={"project": "sync-shared", "entity": "ent", "run_mode": "shared", "sync": "after"},
    )
    assert not list(Path(wandb_online.data_dir).glob("files/ent/sync-shared/*")), "uploaded live"
    root = flyte.io.Dir(path=str(Path(result["run_base_dir"]) / "wandb-offline"))
    first = _local(jobs.wandb_sync, "sync-shared", tmp_path, root)
    assert len(first["synced"]) == 2 and first["skipped"] == []
    [run] = _get(wandb_online, "/_test/runs?project=sync-shared")
    rows = run["history"]
    # every row of both writers, once each (the client's sync replays the writers one after
    # the other and numbers the later one's _step after the earlier one's: "x" is the step)
    for rank in (0, 1):
        assert sorted(r["x"] for r in rows if r["rank"] == rank) == list(range(31)), rank
    assert len(rows) == 62 and run["state"] == "finished"
    before = _stream_requests(wandb_online, run["name"])
    again = _local(jobs.wandb_sync, "sync-shared-again", tmp_path, root)
    assert again == {"synced": [], "skipped": first["synced"]}
    assert _stream_requests(wandb_online, run["name"]) == before  # nothing sent at all
    assert len(_run(wandb_online, "ent", "sync-shared", run["name"])["history"]) == 62


def test_a_failed_sync_keeps_the_folders_and_says_how_to_retry(
    make_wandb_server: Any, wandb_online_at: Any, tmp_path: Path
) -> None:
    server = make_wandb_server()
    wandb_online_at(server)
    run_base_dir = _local(jobs.offline_steps, "sync-down-train", tmp_path, 6)
    root = flyte.io.Dir(path=str(Path(run_base_dir) / "wandb-offline"))
    server.kill()
    with pytest.raises(Exception) as info:
        _local(jobs.wandb_sync, "sync-down", tmp_path, root)
    text = str(info.value)
    assert WandbSyncFailed.__name__ in str(getattr(info.value, "code", ""))
    [run_file] = Path(root.path).rglob("run-*.wandb")
    assert "run the sync task again" in text
    assert f"wandb sync {run_file.parent}`" in text  # what is left, and the command to finish it
    assert list(Path(root.path).rglob("run-*.wandb")) and not list(
        Path(root.path).rglob("*.wandb.synced")
    )
    server.start()
    retried = _local(jobs.wandb_sync, "sync-down-retry", tmp_path, root)
    assert len(retried["synced"]) == 1
    [run] = _get(server, "/_test/runs?project=sync-down")
    assert sorted(r["_step"] for r in run["history"]) == list(range(6))
    assert _local(jobs.wandb_sync, "sync-down-again", tmp_path, root)["synced"] == []


# ------------------------------------------------------------------- the sync task's bounds

env = flyte.TaskEnvironment(name="sync_bound_tests")
wandb_sync_quick = wandb_sync_task(env, name="wandb_sync_quick", sync_timeout=SYNC_TIMEOUT)


@pytest.fixture
def sync_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own temporary folder (``TMPDIR``), to see what a sync leaves there."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server on 127.0.0.1 that takes connections and never answers: the kernel queues them,
    nobody reads."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _point_without_bounds(url: str, wandb_online_at: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Send the client to ``url`` without the test environment's short retries: only the
    plugin's own bounds apply."""
    wandb_online_at(SimpleNamespace(url=url))
    for name in CLIENT_BOUNDS:
        monkeypatch.delenv(env_var(name), raising=False)


def _offline_folders(tmp_path: Path, name: str, rows: int) -> flyte.io.Dir:
    run_base_dir = _local(jobs.offline_steps, name, tmp_path, rows)
    return flyte.io.Dir(path=str(Path(run_base_dir) / "wandb-offline"))


def _failed_sync(task: Any, name: str, tmp_path: Path, root: flyte.io.Dir) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        _local(task, name, tmp_path, root)
    elapsed = time.monotonic() - started
    assert WandbSyncFailed.__name__ in str(getattr(info.value, "code", "")), info.value
    return str(info.value), elapsed


def _assert_left_and_command(text: str, root: flyte.io.Dir, url: str) -> None:
    [run_file] = Path(root.path).rglob("run-*.wandb")
    assert f"Left to sync: {run_file.parent}" in text, text
    assert f"`WANDB_BASE_URL={url} wandb sync {run_file.parent}`" in text, text
    assert not list(Path(root.path).rglob("*.wandb.synced"))


def test_a_sync_to_a_refusing_server_ends_within_the_plugins_retry_bounds(
    wandb_online_at: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sync_tmp: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: every connection refused
    _point_without_bounds(url, wandb_online_at, monkeypatch)
    root = _offline_folders(tmp_path, "sync-refused-train", 3)
    text, elapsed = _failed_sync(jobs.wandb_sync, "sync-refused", tmp_path, root)
    assert elapsed < 60, elapsed  # the client's own retries: many minutes
    _assert_left_and_command(text, root, url)
    assert not list(sync_tmp.glob("wandb-sync-*"))


def test_a_sync_to_a_server_that_never_answers_is_stopped_at_sync_timeout(
    wandb_online_at: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sync_tmp: Path,
    silent_url: str,
) -> None:
    _point_without_bounds(silent_url, wandb_online_at, monkeypatch)
    root = _offline_folders(tmp_path, "sync-silent-train", 3)
    text, elapsed = _failed_sync(wandb_sync_quick, "sync-silent", tmp_path, root)
    assert elapsed < SYNC_TIMEOUT + 30, elapsed  # without the bound: no end at all
    assert f"finished no run folder for {SYNC_TIMEOUT:g} s (sync_timeout)" in text, text
    assert f"is {silent_url} up and answering?" in text, text
    _assert_left_and_command(text, root, silent_url)
    assert not list(sync_tmp.glob("wandb-sync-*"))


def test_a_sync_downloads_only_the_folders_left_and_keeps_no_copy(
    wandb_online: WandbTestServer, tmp_path: Path, sync_tmp: Path
) -> None:
    root = _offline_folders(tmp_path, "sync-skip-a", 4)
    first = _local(jobs.wandb_sync, "sync-skip-1", tmp_path, root)
    assert len(first["synced"]) == 1
    assert not list(sync_tmp.glob("wandb-sync-*"))
    [marker] = Path(root.path).rglob("*.wandb.synced")
    # Nothing can copy a named pipe (shutil refuses it): a sync that downloads this folder fails.
    os.mkfifo(marker.parent / "never-read")
    # a second run's folder joins the same tree, not synced yet
    second = Path(_offline_folders(tmp_path, "sync-skip-b", 3).path)
    for run_dir in second.iterdir():
        shutil.copytree(run_dir, Path(root.path) / run_dir.name)
    again = _local(jobs.wandb_sync, "sync-skip-2", tmp_path, root)
    assert again["skipped"] == first["synced"] and len(again["synced"]) == 1
    assert not list(sync_tmp.glob("wandb-sync-*"))
    for run_file in Path(root.path).rglob("run-*.wandb"):
        run = _run(wandb_online, "ent", "sync-down", run_file.stem.removeprefix("run-"))
        assert len(run["history"]) in (3, 4) and run["state"] == "finished"
