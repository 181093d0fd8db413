"""The contract between the distributions, both ways, checked on their installed sources.

The sweeps distribution imports only the plugin's public names (``flyteplugins.wandb`` and
``flyteplugins.wandb.ext``); the plugin imports only ``flyteplugins.wandb_sweeps`` names in its
``__all__``. Checked on the installed source files (so on built wheels too, in ``nox -s
siblings``), and on the ruff configurations that enforce it while editing: each bans every
private module of the other distribution.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import flyteplugins.wandb as plugin
import flyteplugins.wandb_sweeps as sweeps
from flyteplugins.wandb import ext

PACKAGES = Path(__file__).resolve().parents[2]
PLUGIN_SRC = Path(plugin.__file__).resolve().parent
SWEEPS_SRC = Path(sweeps.__file__).resolve().parent


def _imports_of(src: Path, sibling: str) -> list[tuple[str, str, str]]:
    """(file, module, name) of every absolute import of ``sibling`` or a module below it."""
    found: list[tuple[str, str, str]] = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [(a.name, "") for a in node.names]
            else:
                continue
            found += [
                (path.name, module, name)
                for module, name in modules
                if module == sibling or module.startswith(sibling + ".")
            ]
    return found


def _banned(ruff_toml: Path, sibling: str) -> set[str]:
    pattern = rf'^"({re.escape(sibling)}\.[\w.]+)"\.msg'
    return set(re.findall(pattern, ruff_toml.read_text(), re.M))


def test_sweeps_imports_only_public_names_of_the_plugin() -> None:
    public = {"flyteplugins.wandb": set(plugin.__all__), "flyteplugins.wandb.ext": set(ext.__all__)}
    found = _imports_of(SWEEPS_SRC, "flyteplugins.wandb")
    assert {module for _, module, _ in found} == set(public)
    assert [f for f in found if f[2] not in public[f[1]]] == []
    # getattr on a plugin module would hide a private use from the import check
    text = "\n".join(p.read_text() for p in SWEEPS_SRC.rglob("*.py"))
    assert "flyteplugins.wandb._" not in text
    assert re.findall(r"getattr\(\s*_\w+\s*,\s*['\"]_", text) == []


def test_the_plugin_imports_no_module_of_sweeps() -> None:
    # the log download is found by entry point; the 2.x names are re-exported by name
    assert _imports_of(PLUGIN_SRC, "flyteplugins.wandb_sweeps") == []
    assert set(plugin._SWEEPS_NAMES) <= set(sweeps.__all__)  # the lazy re-exports


def test_ruff_bans_every_private_module_of_the_plugin_in_sweeps() -> None:
    banned = _banned(PACKAGES / "flyteplugins-wandb-sweeps" / "ruff.toml", "flyteplugins.wandb")
    private = {f"flyteplugins.wandb.{p.stem}" for p in PLUGIN_SRC.glob("_*.py")}
    assert private - {"flyteplugins.wandb.__init__"} <= banned


def test_ruff_bans_every_module_of_sweeps_but_its_package_in_the_plugin() -> None:
    banned = _banned(PACKAGES / "flyteplugins-wandb" / "ruff.toml", "flyteplugins.wandb_sweeps")
    modules = {f"flyteplugins.wandb_sweeps.{p.stem}" for p in SWEEPS_SRC.glob("*.py")}
    assert modules - {"flyteplugins.wandb_sweeps.__init__"} <= banned


def test_the_log_download_is_declared_as_entry_points() -> None:
    import inspect
    from importlib.metadata import entry_points

    found = {e.name: e.load() for e in entry_points(group="flyteplugins.wandb.download")}
    assert found == {"after_task": sweeps.after_task, "after_task_async": sweeps.after_task_async}
    for function in found.values():
        kinds = {p.kind for p in inspect.signature(function).parameters.values()}
        assert kinds == {inspect.Parameter.KEYWORD_ONLY}


def test_sweeps_modules_import_only_modules_below_them() -> None:
    # the layers, top to bottom (docs: the package's docstring; the lead's import-linter contract)
    layers = ["_decorator", "download", "_fetch", "_parallel", "_agent", "_controller", "_context"]
    layers += ["_validate", "_state"]
    assert {p.stem for p in SWEEPS_SRC.glob("_*.py")} | {"download"} == {
        *layers,
        "__init__",
        "__about__",
    }
    for path in SWEEPS_SRC.glob("*.py"):
        if path.stem not in layers:
            continue
        tree = ast.parse(path.read_text())
        own = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
        below = set(layers[layers.index(path.stem) + 1 :])
        assert own <= below, (path.stem, own - below)
        local = [
            n
            for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f)
            if isinstance(n, ast.ImportFrom) and n.level == 1
        ]
        assert local == [], f"{path.stem} imports our modules inside a function"


def test_importing_the_package_imports_neither_wandb_nor_the_engine() -> None:
    import subprocess
    import sys

    code = (
        "import sys, flyteplugins.wandb_sweeps; "
        "print(sorted(m for m in ('wandb', 'sweeps', 'jsonschema') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
