"""One decision, one place: docs/architecture.md's table checked against the code.

Every module and function the table names exists; and no module of the plugin or the sweeps
distribution other than the resolver and the client's rules builds a URL, reads the client's
server/entity/project variables, maps hosts, or computes a run id.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = {
    "wandb_core": ROOT / "packages" / "flyteplugins-wandb-core" / "src" / "flyteplugins",
    "wandb": ROOT / "packages" / "flyteplugins-wandb" / "src" / "flyteplugins",
    "wandb_sweeps": ROOT / "packages" / "flyteplugins-wandb-sweeps" / "src" / "flyteplugins",
}


def _table_rows() -> list[tuple[str, str]]:
    text = DOC.read_text()
    section = text.split("## Where each decision lives", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| Decision") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0], cells[1]))
    return rows


def test_the_table_has_rows() -> None:
    assert len(_table_rows()) >= 15


@pytest.mark.parametrize(("decision", "where"), _table_rows())
def test_every_named_module_and_function_exists(decision: str, where: str) -> None:
    # "`wandb/_client.py` (`read_defaults`, ...), `wandb/_backend.py` (`init_run`)"
    package = None
    for match in re.finditer(r"`([\w/.]+\.py)`(?: \(([^)]*)\))?", where):
        path, names = match.group(1), match.group(2)
        if "/" in path:
            package, module = path.split("/", 1)
        else:
            module = path
        assert package is not None, where
        modname = f"flyteplugins.{package}.{module.removesuffix('.py')}"
        mod = importlib.import_module(modname)
        for name in re.findall(r"`([\w.]+)`", names or ""):
            obj: object = mod
            for part in name.split("."):
                assert hasattr(obj, part), f"{decision}: {modname} has no {name}"
                obj = getattr(obj, part)


# -- nothing decided twice ---------------------------------------------------------------

# Modules allowed to decide what the checks below look for.
_DECIDERS = {"wandb/_client.py", "wandb/_client_env.py", "wandb/_resolve.py", "wandb/_pages.py"}
_CLIENT_VARIABLES = {"WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_APP_URL"}
_HOST_RULES = {"api_url_for_host", "api_to_app_url", "page_url", "link_targets"}
# core's id functions may be called where ids are made from an identity (the resolver) and where
# the base of a launcher's job is made (one function of _distributed).
_ID_MAKERS = {"make_base": {"wandb/_resolve.py", "wandb/_pages.py", "wandb/_distributed.py"}}


def _sources() -> list[tuple[str, ast.Module]]:
    out = []
    for package in ("wandb", "wandb_sweeps"):
        for path in sorted((PACKAGES[package] / package).glob("*.py")):
            rel = f"{package}/{path.name}"
            out.append((rel, ast.parse(path.read_text(), filename=str(path))))
    return out


def _docstring_nodes(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


@pytest.mark.parametrize(("rel", "tree"), _sources(), ids=[r for r, _ in _sources()])
def test_no_other_module_decides_hosts_urls_or_ids(rel: str, tree: ast.Module) -> None:
    if rel in _DECIDERS:
        return
    docstrings = _docstring_nodes(tree)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings:
                continue
            text = node.value
            if (
                re.search(r"https?://", text)  # a web address (file:// URIs are data, not pages)
                and not text.endswith((".svg", ".png"))
                and "http://www.w3.org/" not in text  # an XML namespace, not a page
            ):
                problems.append(f"line {node.lineno}: URL literal {text!r}")
            if text in _CLIENT_VARIABLES:
                problems.append(f"line {node.lineno}: reads the client's {text}")
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name in _HOST_RULES:
                problems.append(f"line {node.lineno}: calls {name}()")
            allowed = _ID_MAKERS.get(name or "")
            if allowed is not None and rel not in allowed:
                problems.append(f"line {node.lineno}: computes an id with {name}()")
    assert not problems, f"{rel} decides what the resolver decides: " + "; ".join(problems)
