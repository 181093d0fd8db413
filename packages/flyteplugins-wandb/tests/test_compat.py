"""Drop-in for 2.x: every public name of the published 2.12.1 package, compared with ours.

``PUBLISHED`` holds the facts of /work/shared/published-2.12.1-api.md (read from the published
wheel with ``inspect``): each name's kind, parameters (name, kind, default) and return
annotation. Every way our signature differs from it must be a row of the "Signature differences"
table of docs/migration.md, and every row there must still be a difference: the page is checked
against the code in both directions.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Final

import pytest

import flyteplugins.wandb as plugin

PK = inspect.Parameter.POSITIONAL_OR_KEYWORD
KO = inspect.Parameter.KEYWORD_ONLY
VK = inspect.Parameter.VAR_KEYWORD
REQUIRED: Final = inspect.Parameter.empty

# name -> (kind, [(parameter, kind, default)], return annotation as 2.12.1 prints it)
PUBLISHED: Final[dict[str, tuple[str, list[tuple[str, Any, Any]], str | None]]] = {
    "Wandb": (
        "class",
        [
            ("host", PK, "https://wandb.ai"),
            ("project", PK, None),
            ("entity", PK, None),
            ("run_mode", PK, "auto"),
            ("rank_scope", PK, "global"),
            ("id", PK, None),
            ("name", PK, "Weights & Biases"),
            ("_is_distributed", PK, False),
            ("_worker_index", PK, None),
        ],
        "None",
    ),
    "WandbSweep": (
        "class",
        [
            ("host", PK, "https://wandb.ai"),
            ("project", PK, None),
            ("entity", PK, None),
            ("id", PK, None),
            ("name", PK, "Weights & Biases Sweep"),
        ],
        "None",
    ),
    "download_wandb_run_dir": (
        "function",
        [("run_id", PK, None), ("path", PK, None), ("include_history", PK, True)],
        "str",
    ),
    "download_wandb_run_logs": ("async function", [("run_id", PK, REQUIRED)], "flyte.io._dir.Dir"),
    "download_wandb_sweep_dirs": (
        "function",
        [("sweep_id", PK, None), ("base_path", PK, None), ("include_history", PK, True)],
        "list[str]",
    ),
    "download_wandb_sweep_logs": (
        "async function",
        [("sweep_id", PK, REQUIRED)],
        "flyte.io._dir.Dir",
    ),
    "get_distributed_info": ("function", [], "dict | None"),
    "get_wandb_context": ("function", [], "Optional[flyteplugins.wandb._context._WandBConfig]"),
    "get_wandb_run": ("function", [], None),
    "get_wandb_run_dir": ("function", [], "Optional[str]"),
    "get_wandb_sweep_context": (
        "function",
        [],
        "Optional[flyteplugins.wandb._context._WandBSweepConfig]",
    ),
    "get_wandb_sweep_id": ("function", [], "str | None"),
    "wandb_config": (
        "function",
        [
            ("project", PK, None),
            ("entity", PK, None),
            ("host", PK, None),
            ("id", PK, None),
            ("name", PK, None),
            ("tags", PK, None),
            ("config", PK, None),
            ("mode", PK, None),
            ("group", PK, None),
            ("run_mode", PK, "auto"),
            ("rank_scope", PK, "global"),
            ("download_logs", PK, False),
            ("kwargs", VK, REQUIRED),
        ],
        "flyteplugins.wandb._context._WandBConfig",
    ),
    "wandb_init": (
        "function",
        [
            ("_func", PK, None),
            ("run_mode", KO, None),
            ("rank_scope", KO, None),
            ("download_logs", KO, None),
            ("project", KO, None),
            ("entity", KO, None),
            ("kwargs", VK, REQUIRED),
        ],
        "~F",
    ),
    "wandb_sweep": (
        "function",
        [
            ("_func", PK, None),
            ("project", KO, None),
            ("entity", KO, None),
            ("download_logs", KO, None),
            ("kwargs", VK, REQUIRED),
        ],
        "~F",
    ),
    "wandb_sweep_config": (
        "function",
        [
            ("method", PK, None),
            ("metric", PK, None),
            ("parameters", PK, None),
            ("project", PK, None),
            ("entity", PK, None),
            ("prior_runs", PK, None),
            ("name", PK, None),
            ("download_logs", PK, False),
            ("kwargs", VK, REQUIRED),
        ],
        "flyteplugins.wandb._context._WandBSweepConfig",
    ),
}

# Return annotations that name the same thing in other words (not differences).
SAME_RETURN: Final = {
    ("~F", "Any"),  # the decorators return what they decorate
    ("dict | None", "DistributedInfo | None"),  # DistributedInfo is a TypedDict: a dict
}

MIGRATION = Path(__file__).resolve().parents[3] / "docs" / "migration.md"


def _normalize_return(text: str | None) -> str | None:
    if text is None:
        return None
    text = str(text)
    optional = re.fullmatch(r"Optional\[(.*)\]", text)
    if optional:
        text = f"{optional.group(1)} | None"
    return re.sub(r"[\w.]*\.(\w+)", r"\1", text)  # flyte.io._dir.Dir -> Dir


def _kind_of(obj: Any) -> str:
    if inspect.isclass(obj):
        return "class"
    return "async function" if inspect.iscoroutinefunction(obj) else "function"


def differences() -> set[tuple[str, str]]:
    """Every (name, parameter) where our signature is not the 2.12.1 one ("return", "kind")."""
    out: set[tuple[str, str]] = set()
    for name, (kind, params, returns) in PUBLISHED.items():
        obj = getattr(plugin, name)
        if _kind_of(obj) != kind:
            out.add((name, "kind"))
        sig = inspect.signature(obj)
        ours = list(sig.parameters.values())
        by_name = {p.name: p for p in ours}
        published_positional = [p for p, k, _ in params if k is PK]
        for index, (pname, pkind, default) in enumerate(params):
            if pkind is VK:
                if not any(p.kind is VK for p in ours):
                    out.add((name, "**kwargs"))
                continue
            mine = by_name.get(pname)
            if mine is None:
                out.add((name, pname))
                continue
            # moved (a positional call would bind another parameter), another kind, or default
            moved = pkind is PK and (index >= len(ours) or ours[index].name != pname)
            kinds = (PK,) if pkind is PK else (PK, KO)
            other_default = default is not REQUIRED and mine.default != default
            if moved or mine.kind not in kinds or other_default:
                out.add((name, pname))
        for index, mine in enumerate(ours):
            extra = mine.name not in {p for p, _, _ in params}
            if extra and mine.kind is PK and index < len(published_positional):
                out.add((name, mine.name))
            if extra and mine.kind in (PK, KO) and mine.default is REQUIRED:
                out.add((name, mine.name))  # a 2.x call would miss a required argument
        if returns is not None and kind != "class":
            theirs = _normalize_return(returns)
            mine_return = _normalize_return(sig.return_annotation)
            if theirs != mine_return and (theirs, mine_return) not in SAME_RETURN:
                out.add((name, "return"))
    return out


def documented() -> set[tuple[str, str]]:
    """The rows of the "Signature differences" table of docs/migration.md."""
    text = MIGRATION.read_text()
    section = text.split("## Signature differences from 2.12.1", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`"):
            rows.add((cells[0].strip("`"), cells[1].strip("`")))
    return rows


def test_every_published_name_is_importable_from_flyteplugins_wandb() -> None:
    for name in PUBLISHED:
        assert name in plugin.__all__, name
        ns: dict[str, Any] = {}
        exec(f"from flyteplugins.wandb import {name}", ns)
        assert ns[name] is getattr(plugin, name)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_kind_matches(name: str) -> None:
    assert _kind_of(getattr(plugin, name)) == PUBLISHED[name][0]


def test_every_signature_difference_is_documented_and_nothing_stale() -> None:
    found, doc = differences(), documented()
    assert found - doc == set(), "differences from 2.12.1 missing in docs/migration.md"
    assert doc - found == set(), "rows in docs/migration.md that are no longer differences"


def test_the_positional_parameters_of_the_config_functions_keep_their_2x_places() -> None:
    # wandb_config("p", "e") and wandb_sweep_config("random", m, p, "proj", "ent", ["r1"])
    cfg = plugin.wandb_config("p", "e", None, None, None, ["t"], None, None, "g", "new")
    assert (cfg.project, cfg.entity, cfg.tags, cfg.group, cfg.run_mode) == (
        "p",
        "e",
        ["t"],
        "g",
        "new",
    )
    metric = {"name": "loss", "goal": "minimize"}
    params = {"lr": {"values": [1]}}
    sweep = plugin.wandb_sweep_config("grid", metric, params, "proj", "ent", ["r1"], "nm", True)
    assert (sweep.project, sweep.entity, sweep.prior_runs, sweep.name, sweep.download_logs) == (
        "proj",
        "ent",
        ["r1"],
        "nm",
        True,
    )


def test_config_objects_read_as_2x_objects() -> None:
    cfg = plugin.wandb_config(project="p", tags=["a"], resume="allow")
    assert cfg.project == "p" and cfg.tags == ["a"] and cfg.kwargs == {"resume": "allow"}
    assert cfg.entity is None and cfg.run_mode is None  # not given: the default applies
    assert cfg.to_dict() == dict(cfg) and type(cfg.to_dict()) is dict
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cfg.to_dict().items())
    assert type(cfg).from_dict({**cfg.to_dict(), "team": "x"}) == cfg
    assert {**cfg} == cfg.to_dict() and cfg.get("wandb/project") == '"p"'
    cfg.project = "q"
    assert (
        cfg.project == "q" and plugin.wandb_config(project="q", tags=["a"], resume="allow") == cfg
    )
    with pytest.raises(ValueError, match="project='a/b'"):
        cfg.project = "a/b"
    with pytest.raises(AttributeError, match="projct"):
        cfg.projct = "x"
    with pytest.raises(AttributeError, match="projct"):
        _ = cfg.projct
    sweep = plugin.wandb_sweep_config(method="grid", parameters={"x": {"values": [1]}}, run_cap=3)
    assert sweep.method == "grid" and sweep.kwargs == {"run_cap": 3} and sweep.metric is None
    assert sweep.to_sweep_config() == {
        "method": "grid",
        "parameters": {"x": {"values": [1]}},
        "run_cap": 3,
    }


def test_wandb_sweep_accepts_id() -> None:
    link = plugin.WandbSweep(id="abc", project="p", entity="e")
    assert link.id == link.sweep_id == "abc"
    assert link.url({}).endswith("/e/p/sweeps/abc")
    assert plugin.WandbSweep(sweep_id="abc").id == "abc"
    with pytest.raises(ValueError, match="give one of them"):
        plugin.WandbSweep(id="a", sweep_id="b")
