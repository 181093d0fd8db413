"""The published ``flyteplugins-wandb`` 2.12.1, in a virtualenv of its own, as a baseline.

The published package and ours provide the same import (``flyteplugins.wandb``), so they can never
be installed side by side. This helper creates a separate virtualenv holding the published
release (with the same flyte and wandb versions as our stack, so only the plugin differs) and
runs a given script there::

    from published import run_published
    proc = run_published(SCRIPT, "arg", timeout=120)   # subprocess.CompletedProcess
    seconds = float(proc.stdout.split()[-1])

The virtualenv is created once (``BENCH_PUBLISHED_VENV``, default ``<repo>/.bench/published``,
ignored by git) and reused while its versions match. Benchmarks only measure the published package
as a black box: nothing of it is imported into this process or read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED_VERSION = "2.12.1"
FLYTE_VERSION = "2.12.1"
WANDB_VERSION = "0.31.0"
VENV = Path(os.environ.get("BENCH_PUBLISHED_VENV", ROOT / ".bench" / "published"))
# Our packages in a twin virtualenv holding the same third-party distributions: the wandb client
# lists every installed distribution when a run starts, so a bigger environment (torch, the test
# tools) would be measured as plugin overhead.
TWIN = Path(os.environ.get("BENCH_TWIN_VENV", ROOT / ".bench" / "ours"))
_STAMP = "bench-published.json"


def _python(where: Path) -> Path:
    return where / ("Scripts" if sys.platform == "win32" else "bin") / "python"


def _wanted() -> dict[str, str]:
    return {
        "flyteplugins-wandb": PUBLISHED_VERSION,
        "flyte": FLYTE_VERSION,
        "wandb": WANDB_VERSION,
    }


def published_python() -> Path:
    """The interpreter of the published package's virtualenv, creating it when needed."""
    stamp = VENV / _STAMP
    python = _python(VENV)
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == _wanted():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pins = [f"{name}=={version}" for name, version in _wanted().items()]
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins],
        check=True,
    )
    ours = str(ROOT / "packages")
    check = (
        "import importlib.metadata as m, flyteplugins.wandb as w, pathlib; "
        "v = m.version('flyteplugins-wandb'); "
        f"assert v == {PUBLISHED_VERSION!r}, v; "
        f"assert not pathlib.Path(w.__file__).resolve().is_relative_to({ours!r}), w.__file__"
    )
    subprocess.run([str(python), "-c", check], check=True)
    stamp.write_text(json.dumps(_wanted()))
    return python


def twin_python() -> Path:
    """The interpreter of our twin virtualenv (same flyte and wandb pins, our three packages)."""
    stamp = TWIN / _STAMP
    python = _python(TWIN)
    wanted = {"flyte": FLYTE_VERSION, "wandb": WANDB_VERSION, "ours": "local"}
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        # Editable installs: the twin always runs the working tree's code.
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(TWIN)
    packages = ROOT / "packages"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"flyte=={FLYTE_VERSION}",
            f"wandb=={WANDB_VERSION}",
            "-e",
            str(packages / "flyteplugins-wandb-core"),
            "-e",
            str(packages / "flyteplugins-wandb"),
        ],
        check=True,
    )
    stamp.write_text(json.dumps(wanted))
    return python


def run_published(
    script: str,
    *args: str,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (Python source) with the published package; raises on a non-zero exit."""
    python = published_python()
    full_env = {**os.environ, **(env or {})}
    # Never let our editable packages leak into the baseline's interpreter.
    full_env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(python), "-c", script, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


if __name__ == "__main__":
    print(published_python())
