"""The size and shape of the code: this tree beside the tree before the plugin was slimmed.

Rows (each beside the same figure of :data:`BASELINE`, a commit of this repository, measured
the same way in the same run): source lines of the plugin and of the sweeps distribution, the
longest module, the lines a plain ``@wandb_init`` task imports (a real local Flyte run, offline,
in a fresh process), import circles, modules importing a private Flyte module, modules using the
wandb client's internals. Lines are physical lines of ``src/**/*.py``.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The last commit before the issue "One plugin a maintainer can hold" (main at b00fda9).
BASELINE = os.environ.get("BENCH_STRUCTURE_BASELINE", "b00fda9")
PACKAGES = {
    "core": "flyteplugins-wandb-core/src/flyteplugins/wandb_core",
    "wandb": "flyteplugins-wandb/src/flyteplugins/wandb",
    "sweeps": "flyteplugins-wandb-sweeps/src/flyteplugins/wandb_sweeps",
}
WANDB_INTERNALS = (
    "wandb.sdk",
    "wandb.proto",
    "wandb.apis.internal",
    "wandb.agents",
    "wandb.wandb_agent",
    "wandb.wandb_controller",
)

_PLAIN_TASK = """
import json, sys
import flyte
from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="structure")

@wandb_init(project="structure")
@env.task
def plain() -> int:
    get_wandb_run().log({"x": 1})
    return 1

flyte.init()
flyte.with_runcontext(mode="local").run(plain)
files = sorted(
    m.__file__ for n, m in list(sys.modules.items())
    if n.startswith("flyteplugins.wandb") and getattr(m, "__file__", None)
)
print(json.dumps(files))
"""


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def _modules(pkg: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(pkg.glob("*.py"))}


def _imports(path: Path, package: str) -> tuple[set[str], list[str]]:
    """Our own modules ``path`` imports (any depth, function bodies included), and its
    absolute imports."""
    own: set[str] = set()
    absolute: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    own.add(node.module.split(".")[0])
                else:
                    own.update(a.name for a in node.names)
            elif node.level == 0 and node.module:
                absolute.append(node.module)
                if node.module.startswith(package + "."):
                    own.add(node.module[len(package) + 1 :].split(".")[0])
        elif isinstance(node, ast.Import):
            absolute += [a.name for a in node.names]
    return own, absolute


def _circles(graph: dict[str, set[str]]) -> int:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    count = 0

    def visit(v: str) -> None:
        nonlocal count
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            size = 0
            while True:
                w = stack.pop()
                on.discard(w)
                size += 1
                if w == v:
                    break
            count += size > 1

    for v in graph:
        if v not in index:
            visit(v)
    return count


def measure(packages_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"circles": 0, "flyte_private": 0, "wandb_internal": 0}
    for key in ("wandb", "sweeps"):
        pkg = packages_dir / PACKAGES[key]
        mods = _modules(pkg)
        out[f"{key}_lines"] = sum(_lines(p) for p in pkg.rglob("*.py"))
        out[f"{key}_longest"] = max(_lines(p) for p in mods.values())
        package = "flyteplugins." + pkg.name
        graph: dict[str, set[str]] = {}
        for name, path in mods.items():
            own, absolute = _imports(path, package)
            graph[name] = own - {name}
            out["flyte_private"] += any(m.startswith("flyte._") for m in absolute)
            out["wandb_internal"] += any(m.startswith(WANDB_INTERNALS) for m in absolute)
        out["circles"] += _circles(graph)
    out["longest"] = max(out["wandb_longest"], out["sweeps_longest"])
    out["plain_path_lines"] = _plain_path(packages_dir)
    return out


def _plain_path(packages_dir: Path) -> float:
    """Lines of the plugin's modules a plain decorated task imports (core's included)."""
    src = [str(packages_dir / p.split("/src/")[0] / "src") for p in PACKAGES.values()]
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
        env.update(
            PYTHONPATH=os.pathsep.join(src),
            WANDB_MODE="offline",
            WANDB_SILENT="true",
            WANDB_DIR=tmp,
            HOME=tmp,
        )
        done = subprocess.run(
            [sys.executable, "-c", _PLAIN_TASK],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        return float("nan")
    files = json.loads(done.stdout.strip().splitlines()[-1])
    return float(sum(_lines(Path(f)) for f in files))


def _baseline_tree(tmp: Path) -> Path:
    archive = tmp / "base.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), BASELINE, "packages"], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "packages"


ROWS = [
    ("plugin source lines", "wandb_lines", "lines", "<= 4000"),
    ("sweeps source lines", "sweeps_lines", "lines", "<= 2500"),
    ("longest module", "longest", "lines", "<= 400"),
    ("lines a plain @wandb_init task imports", "plain_path_lines", "lines", "<= 2000"),
    ("import circles (plugin + sweeps)", "circles", "count", "== 0"),
    ("modules importing flyte._*", "flyte_private", "count", "== 0"),
    ("modules using wandb internals", "wandb_internal", "count", "<= 3"),
]


def run() -> list[dict[str, Any]]:
    now = measure(ROOT / "packages")
    with tempfile.TemporaryDirectory() as tmp:
        before = measure(_baseline_tree(Path(tmp)))
    return [
        {
            "benchmark": f"structure: {label} (vs {BASELINE})",
            "value": float(now[key]),
            "baseline": float(before[key]) or None,
            "unit": unit,
            "target": target,
        }
        for label, key, unit, target in ROWS
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']}: {row['value']:g} (was {row['baseline']})")
