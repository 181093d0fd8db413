"""The W&B-compatible servers the online tests talk to, as processes a test can kill and restart.

* ``WandbTestServer``: this project's own server (``tests-integration/wandb_server``), stdlib only.
* ``OpenWandbServer``: ``openwandb`` from PyPI, installed into its own virtual environment under
  ``~/.cache/flyteplugins-wandb-tests`` (keyed by version) the first time it is needed, so its
  pinned dependencies never touch the project's. Its licence is non-commercial: it is a test tool
  here and never a dependency of any package.

Both listen on 127.0.0.1 on a free port with a temporary data folder, and are stopped by the
process id they were started with.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OPENWANDB_VERSION = "0.5.25"
CACHE_ROOT = Path(
    os.environ.get("FLYTEPLUGINS_WANDB_TEST_CACHE")
    or Path.home() / ".cache" / "flyteplugins-wandb-tests"
)
# Any 40+ character key without a dash is accepted by both servers; it is not a real secret, but
# the tests treat it as one (it must never show up outside the Authorization header).
DUMMY_API_KEY = "local" + "0123456789abcdef" * 3

# Bounded client retries for tests: a dead server costs seconds, not the client's default minutes.
BOUNDED_RETRY_ENV = {
    "WANDB__GRAPHQL_RETRY_MAX": "3",
    "WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS": "0.5",
    "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "2",
    "WANDB__FILE_STREAM_RETRY_MAX": "3",
    "WANDB__FILE_STREAM_RETRY_WAIT_MIN_SECONDS": "0.5",
    "WANDB__FILE_STREAM_RETRY_WAIT_MAX_SECONDS": "2",
    "WANDB__FILE_TRANSFER_RETRY_MAX": "3",
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MIN_SECONDS": "0.5",
    "WANDB__FILE_TRANSFER_RETRY_WAIT_MAX_SECONDS": "2",
    "WANDB_INIT_TIMEOUT": "60",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_env(url: str, home: Path) -> dict[str, str]:
    """Environment that points the real wandb client at ``url`` with every folder under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "WANDB_BASE_URL": url,
        "WANDB_MODE": "online",
        "WANDB_API_KEY": DUMMY_API_KEY,
        "HOME": str(home),
        "WANDB_DIR": str(home),
        "WANDB_CONFIG_DIR": str(home / ".config" / "wandb"),
        "WANDB_CACHE_DIR": str(home / ".cache" / "wandb"),
        "WANDB_DATA_DIR": str(home / ".local" / "wandb"),
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        **BOUNDED_RETRY_ENV,
    }


class ServerProcess:
    """A server started as a subprocess of the test session; ``kill`` simulates a crash."""

    name = "server"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"{self.name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str], Path | None]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        argv, env, cwd = self.command()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode} while starting on "
                    f"{self.url}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    if resp.status < 500:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer on {self.url} in {timeout:.0f} s:\n{self.log_tail()}"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        # The server runs in its own session, started by us: signal exactly that group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as in a crash: connections drop, nothing is flushed."""
        if self.running:
            self._signal(signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Start again on the same port and data folder (the client's base URL stays valid)."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.load(resp)


class WandbTestServer(ServerProcess):
    """The project's own server; its ``/_test`` API shows exactly what it recorded."""

    name = "wandb-test-server"

    def __init__(self, data_dir: Path, port: int | None = None, entity: str = "local-entity"):
        super().__init__(data_dir, port)
        self.entity = entity

    def command(self) -> tuple[list[str], dict[str, str], Path | None]:
        argv = [
            sys.executable, "-m", "wandb_server",
            "--port", str(self.port), "--data-dir", str(self.data_dir), "--entity", self.entity,
        ]  # fmt: skip
        return argv, {"PYTHONPATH": str(HERE)}, HERE

    def runs(self, entity: str | None = None, project: str | None = None) -> list[dict[str, Any]]:
        query = "&".join(
            f"{k}={v}" for k, v in (("entity", entity), ("project", project)) if v is not None
        )
        result: list[dict[str, Any]] = self.get_json("/_test/runs" + (f"?{query}" if query else ""))
        return result

    def run(self, entity: str, project: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json(f"/_test/runs/{entity}/{project}/{name}")
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get_json("/_test/requests")
        return result

    def sweeps(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get_json("/_test/sweeps")
        return result


def openwandb_venv(version: str = OPENWANDB_VERSION) -> Path:
    """The ``bin`` folder of a venv holding openwandb ``version``, created once and cached."""
    root = CACHE_ROOT / f"openwandb-{version}"
    bindir = root / "bin"
    marker = root / ".complete"
    if marker.exists():
        return bindir
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / f"openwandb-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building the same venv
        if marker.exists():
            return bindir
        shutil.rmtree(root, ignore_errors=True)
        base_python = getattr(sys, "_base_executable", sys.executable)
        steps = [
            [base_python, "-m", "venv", str(root)],
            [str(bindir / "python"), "-m", "pip", "install", "-q", f"openwandb=={version}"],
        ]
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                shutil.rmtree(root, ignore_errors=True)
                raise RuntimeError(
                    f"could not install openwandb=={version} into {root} "
                    f"({' '.join(argv)}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
                )
        marker.write_text(version)
    return bindir


class OpenWandbServer(ServerProcess):
    """openwandb (third-party, non-commercial licence): checked through its REST API."""

    name = "openwandb"

    def __init__(self, data_dir: Path, port: int | None = None, version: str = OPENWANDB_VERSION):
        super().__init__(data_dir, port)
        self.bindir = openwandb_venv(version)

    def command(self) -> tuple[list[str], dict[str, str], Path | None]:
        argv = [
            str(self.bindir / "openwandb"), "serve",
            "--host", self.host, "--port", str(self.port), "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        return argv, {"OPENWANDB_DATA_DIR": str(self.data_dir)}, self.data_dir

    def runs(self, entity: str, project: str) -> Any:
        return self.get_json(f"/api/v2/projects/{entity}/{project}/runs")

    def metrics(self, run_id: str) -> Any:
        return self.get_json(f"/api/v2/runs/{run_id}/metrics")

    def config(self, run_id: str) -> Any:
        return self.get_json(f"/api/v2/runs/{run_id}/config")
