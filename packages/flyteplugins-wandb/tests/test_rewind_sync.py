"""Rewind and sync="after": the pure rules, table-driven and as properties.

What the rules decide end to end (the server's history after a retried, rewound, synced run) is
checked by tests-integration/test_rewind_sync.py with real Flyte, torch and wandb.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb import WandbRewindError, wandb_config, wandb_init
from flyteplugins.wandb._client import ClientDefaults
from flyteplugins.wandb._resolve import PLUGIN_ONLY, Identity, Parent, Trial, resolve, rewound
from flyteplugins.wandb._rewind import check_step
from flyteplugins.wandb._settings import check_sync
from flyteplugins.wandb._sync import (
    METADATA_FILE,
    find_folders,
    retry_hint,
    wandb_sync_task,
)
from flyteplugins.wandb_core import Topology

FORGE = ClientDefaults()
IDENT = Identity(run_name="r1", action_name="a0", attempt=1)


# -- check_step ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "last", "logged", "offline", "error", "words"),
    [
        (50, 69, 0, False, None, None),
        (69, 69, 0, False, None, None),  # nothing to drop: still a rewind
        (0, 69, 0, False, None, None),
        (70, 69, 0, False, WandbRewindError, "past the run's last step 69"),
        (-1, 69, 0, False, WandbRewindError, "steps start at 0"),
        (5, None, 0, False, WandbRewindError, "no history on its server"),
        (50, 69, 3, False, WandbRewindError, "already logged 3 row(s)"),
        (500, None, 0, True, None, None),  # offline: checked when the run is synced
        (-3, None, 0, True, WandbRewindError, "steps start at 0"),
        (50, None, 1, True, WandbRewindError, "already logged"),
        (1.5, 69, 0, False, TypeError, "must be an int"),
        (True, 69, 0, False, TypeError, "must be an int"),
        ("5", 69, 0, False, TypeError, "must be an int"),
    ],
)  # fmt: skip
def test_check_step(
    step: Any, last: int | None, logged: int, offline: bool, error: type | None, words: str | None
) -> None:
    if error is None:
        assert check_step("run-1", step, last_step=last, logged=logged, offline=offline) == step
        return
    with pytest.raises(error) as info:
        check_step("run-1", step, last_step=last, logged=logged, offline=offline)
    text = str(info.value)
    assert words is not None and words in text
    assert "'run-1'" in text and str(step) in text


@given(st.integers(-5, 200), st.integers(0, 150) | st.none())
def test_a_step_is_accepted_exactly_when_it_is_on_the_server(step: int, last: int | None) -> None:
    if step >= 0 and last is not None and step <= last:
        assert check_step("r", step, last_step=last, logged=0, offline=False) == step
        return
    with pytest.raises(WandbRewindError) as info:
        check_step("r", step, last_step=last, logged=0, offline=False)
    assert f"step {step}" in str(info.value) and "'r'" in str(info.value)


# -- the resolver: sync="after" and rewound() ------------------------------------------------


def test_sync_is_the_plugins_and_forces_offline() -> None:
    assert "sync" in PLUGIN_ONLY
    for given_mode in (None, "offline"):
        settings: dict[str, Any] = {"sync": "after", "project": "p"}
        if given_mode:
            settings["mode"] = given_mode
        r = resolve(settings, kind="task", defaults=FORGE, identity=IDENT)
        assert r.init_kwargs["mode"] == "offline" and "sync" not in r.init_kwargs
    # a mode from an outer context loses to the task's own sync="after"
    r = resolve({"sync": "after", "mode": "online"}, kind="task", defaults=FORGE, identity=IDENT)
    assert r.init_kwargs["mode"] == "offline"
    plain = resolve({"mode": "online"}, kind="task", defaults=FORGE, identity=IDENT)
    assert plain.init_kwargs["mode"] == "online"


@pytest.mark.parametrize(
    ("case", "kw", "refusal"),
    [
        ("task", {"kind": "task", "identity": IDENT}, None),
        ("rank's own run", {"kind": "task", "identity": IDENT, "mode": "new",
                            "topology": Topology.enumerate(1, 2)[1]}, None),
        ("shared writer", {"kind": "task", "identity": IDENT, "mode": "shared",
                           "topology": Topology.enumerate(1, 2)[1]}, "shared run"),
        ("shared primary", {"kind": "task", "identity": IDENT, "mode": "shared",
                            "topology": Topology.enumerate(1, 2)[0]}, "shared run"),
        ("child joining", {"kind": "task", "identity": IDENT, "parent": Parent("p1")},
         "parent task's run"),
        ("function outside Flyte", {"kind": "function"}, "chosen by the client"),
        ("trial", {"kind": "trial", "trial": Trial("sw", run_id="t1")}, "sweep trial"),
    ],
)  # fmt: skip
def test_rewound(case: str, kw: dict[str, Any], refusal: str | None) -> None:
    settings: dict[str, Any] = {"project": "p", "entity": "e"}
    if "mode" in kw:
        settings["run_mode"] = kw.pop("mode")
    r = resolve(settings, defaults=FORGE, **kw)
    if refusal is None:
        out = rewound(r, 50)
        assert out.init_kwargs["resume_from"] == f"{r.run_id}?_step=50", case
        assert "resume" not in out.init_kwargs and out.resume is None
        assert out.run_id == r.run_id and out.init_kwargs["id"] == r.run_id
        assert {k: v for k, v in out.init_kwargs.items() if k != "resume_from"} == {
            k: v for k, v in r.init_kwargs.items() if k != "resume"
        }
        return
    with pytest.raises(ValueError, match=refusal) as info:
        rewound(r, 50)
    assert "step 50" in str(info.value), case


# -- the sync setting ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode", "error"),
    [
        ("after", None, None),
        ("after", "offline", None),
        (None, "online", None),
        ("before", None, "sync='before': expected one of 'after'"),
        (True, None, "sync=True"),
        ("after", "online", "mode='online' was given with it"),
        ("after", "disabled", "mode='disabled'"),
    ],
)
def test_check_sync(value: Any, mode: str | None, error: str | None) -> None:
    if error is None:
        check_sync(value, mode)
        return
    with pytest.raises(ValueError, match=error):
        check_sync(value, mode)


def test_sync_travels_in_the_context_and_is_refused_at_decoration() -> None:
    cfg = wandb_config(sync="after", project="p")
    assert cfg.sync == "after" and cfg.to_dict()["wandb/sync"] == '"after"'
    with pytest.raises(ValueError, match="sync='later'"):
        wandb_config(sync="later")
    with pytest.raises(ValueError, match="mode='shared'"):

        @wandb_init(sync="after", mode="shared")
        def f() -> None: ...


# -- the sync task's bookkeeping -------------------------------------------------------------


def _folder(root: Path, run_id: str, key: str, name: str, *, synced: bool = False) -> Path:
    folder = root / run_id / key / name
    folder.mkdir(parents=True)
    (folder / f"run-{run_id}.wandb").write_bytes(b":W&B")
    (folder / METADATA_FILE).write_text(json.dumps({"run_id": run_id, "host": "h"}))
    if synced:
        (folder / f"run-{run_id}.wandb.synced").write_text("")
    return folder


def test_find_folders_maps_each_local_folder_to_its_place_in_storage(tmp_path: Path) -> None:
    _folder(tmp_path, "b", "2-1", "offline-run-2-b")
    _folder(tmp_path, "a", "1-1", "offline-run-1-a", synced=True)
    _folder(tmp_path, "a", "3-1", "offline-run-3-a-rewind50")
    found = find_folders(tmp_path, "s3://bucket/run/wandb-offline")
    assert [(f.run_id, f.synced) for f in found] == [("a", True), ("a", False), ("b", False)]
    assert found[1].remote == "s3://bucket/run/wandb-offline/a/3-1/offline-run-3-a-rewind50"
    assert found[0].marker.name == "run-a.wandb.synced" and found[0].meta["host"] == "h"
    hint = retry_hint([found[1].remote])
    assert "run the sync task again" in hint and found[1].remote in hint


def test_the_sync_task_is_a_task_of_the_callers_module() -> None:
    import flyte

    env = flyte.TaskEnvironment(name="unit_sync")
    task = wandb_sync_task(env, name="my_sync", retries=2)
    assert task.func.__module__ == __name__ and task.func.__name__ == "my_sync"
    assert set(task.interface.inputs) == {"folders", "run_ids"}
    with pytest.raises(ValueError, match="Python identifier"):
        wandb_sync_task(env, name="not a name")
