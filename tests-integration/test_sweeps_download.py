"""Log download: every file, every history row and the summary, from the loopback server and from
offline run folders, with and without pandas; hostile file names refused; failures reported.

Runs are written by the real wandb client; what the download wrote is compared with what the
server serves through ``wandb.Api``.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import pytest
import wandb
from _plugin_helpers import run_local
from servers import WandbTestServer

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb_sweeps import (
    DownloadError,
    download_run,
    download_sweep,
    run_agent,
    wandb_sweep,
    wandb_sweep_config,
)

HERE = Path(__file__).resolve().parent
ROWS = 1_250  # more than one history page (1000 rows)

env = flyte.TaskEnvironment(name="sweeps_download")


def _write_run(project: str, run_id: str, root: Path, rows: int = ROWS) -> None:
    """A real run with nested files, many history rows and a summary."""
    run = wandb.init(project=project, entity="ent", id=run_id, reinit="create_new")
    for i in range(rows):
        run.log({"loss": 1.0 / (i + 1), "step_sq": i * i})
    run.summary["best"] = 0.5
    run.summary["name"] = "2024"
    src = root / "artifacts"
    (src / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    for name in ("a.txt", "sub/b.json", "sub/deeper/c.bin"):
        (src / name).write_bytes(f"content of {name}\n".encode() * 50)
        run.save(str(src / name), base_path=str(src), policy="now")
    run.finish()


def _read_dir(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ----------------------------------------------------------------------------- online


def test_online_run_files_history_and_summary_arrive_complete(
    wandb_online: WandbTestServer, tmp_path: Path
) -> None:
    _write_run("dl-full", "full1", tmp_path)
    target = tmp_path / "logs"
    result = download_run("full1", project="dl-full", entity="ent", target=target, progress=True)
    assert result.ok, result.failed
    api_run = wandb.Api().run("ent/dl-full/full1")
    served = {f.name for f in api_run.files()}
    assert {"a.txt", "sub/b.json", "sub/deeper/c.bin", "config.yaml"} <= served
    got = _read_dir(target / "files")
    assert set(got) == served
    for name in ("a.txt", "sub/b.json", "sub/deeper/c.bin"):
        assert got[name] == (tmp_path / "artifacts" / name).read_bytes()
    rows = _history(target / "history.jsonl")
    assert len(rows) == ROWS == result.history_rows
    assert [r["_step"] for r in rows] == list(range(ROWS))
    assert rows == list(api_run.scan_history())
    summary = json.loads((target / "summary.json").read_text())
    assert summary["best"] == 0.5
    assert summary["name"] == "2024"  # a string stays a string
    assert summary["loss"] == pytest.approx(1.0 / ROWS)
    report = json.loads((target / "download.json").read_text())
    assert report["failed"] == {}
    assert report["history_rows"] == ROWS


class _HostileProxy:
    """Forwards to the test server, but its RunFiles answer adds hostile and broken files.

    Our honest test server never serves a file name outside a run's folder, so this proxy plays a
    compromised server; everything else (the real client, the real server) is unchanged.
    """

    EXTRA = {
        "../../escaped.txt": "/evil/escaped",
        "/etc/absolute.txt": "/evil/absolute",
        "missing.bin": "/evil/missing",
        "slow.bin": "/evil/slow",
    }

    def __init__(self, upstream: str, slow_seconds: float = 0.0) -> None:
        self.upstream = upstream
        self.slow_seconds = slow_seconds
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, body: bytes | None) -> tuple[int, bytes, str]:
                req = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command
                )
                for key in ("Authorization", "Content-Type", "User-Agent"):
                    if self.headers.get(key):
                        req.add_header(key, self.headers[key])
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        ctype = resp.headers.get("Content-Type", "application/json")
                        return resp.status, resp.read(), ctype
                except urllib.error.HTTPError as err:
                    return err.code, err.read(), "application/json"

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/evil/slow":
                    time.sleep(proxy.slow_seconds)
                    self._send(200, b"slow", "application/octet-stream")
                elif self.path.startswith("/evil/"):
                    if self.path == "/evil/missing":
                        self._send(404, b"not found", "text/plain")
                    else:
                        self._send(200, b"owned", "application/octet-stream")
                else:
                    self._send(*self._forward(None))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, data, ctype = self._forward(body)
                if b"RunFiles" in body and status == 200:
                    doc = json.loads(data)
                    files = doc["data"]["project"]["run"]["files"]
                    for name, path in proxy.EXTRA.items():
                        url = f"http://127.0.0.1:{proxy.port}{path}"
                        node = {"id": name, "name": name, "url": url, "sizeBytes": 5}
                        files["edges"].append({"node": node, "cursor": name})
                    doc["data"]["project"]["run"]["fileCount"] = len(files["edges"])
                    data = json.dumps(doc).encode()
                self._send(status, data, ctype)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(wandb_online: WandbTestServer) -> Iterator[_HostileProxy]:
    proxy = _HostileProxy(wandb_online.url, slow_seconds=0.0)
    try:
        yield proxy
    finally:
        proxy.close()


def test_hostile_names_refused_failures_reported_rest_downloaded(
    hostile: _HostileProxy, tmp_path: Path
) -> None:
    _write_run("dl-evil", "evil1", tmp_path, rows=5)
    target = tmp_path / "box" / "logs"
    result = download_run("evil1", project="dl-evil", entity="ent", host=hostile.url, target=target)
    assert "refused" in result.failed["files/../../escaped.txt"]
    assert "refused" in result.failed["files//etc/absolute.txt"]
    assert "files/missing.bin" in result.failed
    assert not (tmp_path / "box" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
    assert b"owned" not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    got = _read_dir(target / "files")
    assert {"a.txt", "sub/b.json", "sub/deeper/c.bin", "slow.bin"} <= set(got)
    assert len(_history(target / "history.jsonl")) == 5
    report = json.loads((target / "download.json").read_text())
    assert set(report["failed"]) == set(result.failed)

    with pytest.raises(DownloadError, match=r"missing\.bin") as info:
        download_run(
            "evil1", project="dl-evil", entity="ent", host=hostile.url,
            target=tmp_path / "strict", strict=True,
        )  # fmt: skip
    assert "files/../../escaped.txt" in info.value.failed


def test_download_is_bounded_in_time(hostile: _HostileProxy, tmp_path: Path) -> None:
    _write_run("dl-slow", "slow1", tmp_path, rows=5)
    hostile.slow_seconds = 30.0
    start = time.monotonic()
    result = download_run(
        "slow1", project="dl-slow", entity="ent", host=hostile.url,
        target=tmp_path / "logs", timeout=4.0,
    )  # fmt: skip
    assert time.monotonic() - start < 15.0
    assert "timed out" in result.failed["files/slow.bin"]
    assert "a.txt" in _read_dir(tmp_path / "logs" / "files")


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "absent":
        sys.modules["pandas"] = None  # makes `import pandas` fail, as if it were not installed
    try:
        import pandas
        have = True
    except ImportError:
        have = False
    from flyteplugins.wandb_sweeps import download_run
    r = download_run(sys.argv[3], project="dl-pandas", entity="ent", target=sys.argv[2])
    print(json.dumps({"pandas": have, "ok": r.ok, "rows": r.history_rows, "files": r.files}))
    """
)


@pytest.fixture(scope="session")
def pandas_site(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A folder holding pandas, for a subprocess, when this interpreter has none."""
    try:
        import pandas  # noqa: F401

        return None
    except ImportError:
        pass
    site = tmp_path_factory.mktemp("pandas-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         "pandas"],
        check=True,
    )  # fmt: skip
    return site


@pytest.mark.parametrize("pandas", ["present", "absent"])
def test_download_works_with_and_without_pandas(
    wandb_online: WandbTestServer, tmp_path: Path, pandas: str, pandas_site: Path | None
) -> None:
    _write_run("dl-pandas", f"pd-{pandas}", tmp_path, rows=1_100)
    env = dict(os.environ)
    if pandas == "present" and pandas_site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pandas_site), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, pandas, str(tmp_path / "logs"), f"pd-{pandas}"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["pandas"] is (pandas == "present")
    assert report["ok"] is True
    assert report["rows"] == 1_100
    rows = _history(tmp_path / "logs" / "history.jsonl")
    assert [r["_step"] for r in rows] == list(range(1_100))


# ----------------------------------------------------------------------------- sweeps, offline


@wandb_init
def objective() -> None:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": run.config["lr"]})


@wandb_sweep(download_logs=True)
@env.task
def sweep_with_logs() -> str:
    run_agent(function=objective)
    return "done"


def test_sweep_download_logs_online(
    wandb_online: WandbTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    ctx = {
        **wandb_config(project="dl-sweep", entity="ent"),
        **wandb_sweep_config(method="grid", parameters={"lr": {"values": [0.1, 0.2]}}),
    }
    assert run_local(sweep_with_logs, custom_context=ctx) == "done"
    [root] = list((tmp_path / "tmp" / "wandb_runs").glob("wandb-sweep-*"))  # the default folder
    info = json.loads((root / "sweep.json").read_text())
    assert len(info["runs"]) == 2
    for run_id in info["runs"]:
        rows = _history(root / "runs" / run_id / "history.jsonl")
        summary = json.loads((root / "runs" / run_id / "summary.json").read_text())
        assert [r["loss"] for r in rows] == [summary["loss"]]
        assert "config.yaml" in _read_dir(root / "runs" / run_id / "files")


def test_offline_run_and_sweep_download(wandb_offline: Path, tmp_path: Path) -> None:
    wandb.teardown()  # forget settings cached by an earlier (online) test
    run = wandb.init(project="dl-off", id="off1", group="sw1", tags=["sw1"], reinit="create_new")
    for i in range(30):
        run.log({"loss": float(i)})
    run.summary["extra"] = "2024"
    run.finish()
    result = download_run("off1", target=tmp_path / "one")
    assert result.ok
    rows = _history(tmp_path / "one" / "history.jsonl")
    assert [r["loss"] for r in rows] == [float(i) for i in range(30)]
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["extra"] == "2024"
    assert (tmp_path / "one" / "run-off1.wandb").is_file()
    [folder] = list((wandb_offline / "wandb").glob("offline-run-*-off1"))
    assert _read_dir(tmp_path / "one" / "files") == _read_dir(folder / "files") != {}
    sweep = download_sweep("sw1", target=tmp_path / "sweep")
    assert sweep.run_ids == ["off1"]
    assert (tmp_path / "sweep" / "runs" / "off1" / "history.jsonl").is_file()


# ----------------------------------------------------------------------------- @wandb_init hook


@wandb_init(download_logs=True)
@env.task
def train_with_logs(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"loss": 1.0 / (i + 1)})
    return str(run.id)


@wandb_init(download_logs=True)
@env.task
async def train_with_logs_async(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"loss": float(i)})
    return str(run.id)


@pytest.mark.parametrize("task", [train_with_logs, train_with_logs_async])
@pytest.mark.parametrize("backend", ["online", "offline"])
def test_wandb_init_download_logs_after_the_task(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    task: Any,
) -> None:
    request.getfixturevalue("wandb_online" if backend == "online" else "wandb_offline")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    run_id = run_local(task, 40, custom_context=wandb_config(project="dl-init", entity="ent"))
    root = tmp_path / "tmp" / "wandb_runs" / f"wandb-run-{run_id}"  # the default folder
    assert len(_history(root / "history.jsonl")) == 40
    assert "loss" in json.loads((root / "summary.json").read_text())
    assert json.loads((root / "download.json").read_text())["failed"] == {}
    files = _read_dir(root / "files")
    if backend == "online":
        assert {"config.yaml", "wandb-summary.json"} <= set(files)
    else:
        assert (root / f"run-{run_id}.wandb").is_file()
