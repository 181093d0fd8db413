"""Rewind and sync="after": the pure rules, table-driven and as properties.

What the rules decide end to end (the server's history after a retried, rewound, synced run) is
checked by tests-integration/test_rewind_sync.py with real Flyte, torch and wandb.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb import WandbRewindError, wandb_config, wandb_init
from flyteplugins.wandb._client import ClientDefaults
from flyteplugins.wandb._resilience import CLIENT_BOUNDS, env_var
from flyteplugins.wandb._resolve import PLUGIN_ONLY, Identity, Parent, Trial, resolve
from flyteplugins.wandb._rewind import check_step, rewound
from flyteplugins.wandb._settings import check_sync
from flyteplugins.wandb._sync import (
    METADATA_FILE,
    SYNCED_SUFFIX,
    client_bounds_env,
    find_folders,
    relative_to_root,
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
    ("value", "mode", "fallback", "error"),
    [
        ("after", None, None, None),
        ("after", "offline", None, None),
        ("after", None, False, None),
        (None, "online", True, None),
        ("before", None, None, "sync='before': expected one of 'after'"),
        (True, None, None, "sync=True"),
        ("after", "online", None, "mode='online' was given with it"),
        ("after", "disabled", None, "mode='disabled'"),
        ("after", None, True, "offline_fallback=True .* would never apply"),
    ],
)
def test_check_sync(value: Any, mode: str | None, fallback: bool | None, error: str | None) -> None:
    if error is None:
        check_sync(value, mode, fallback)
        return
    with pytest.raises(ValueError, match=error):
        check_sync(value, mode, fallback)


def test_sync_after_with_offline_fallback_is_refused_where_it_is_given() -> None:
    with pytest.raises(ValueError, match=r"sync='after' logs offline from the start"):
        wandb_config(sync="after", offline_fallback=True)
    with pytest.raises(ValueError, match=r"offline_fallback=True"):

        @wandb_init(sync="after", offline_fallback=True)
        def f() -> None: ...


def test_sync_travels_in_the_context_and_is_refused_at_decoration() -> None:
    cfg = wandb_config(sync="after", project="p")
    assert cfg.sync == "after" and cfg.to_dict()["wandb/sync"] == '"after"'
    with pytest.raises(ValueError, match="sync='later'"):
        wandb_config(sync="later")
    with pytest.raises(ValueError, match="mode='shared'"):

        @wandb_init(sync="after", mode="shared")
        def f() -> None: ...


# -- the sync task's bookkeeping -------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ([], []),
        (["a/1-1/offline-run-1-a/run-a.wandb", "a/1-1/offline-run-1-a/flyte-wandb.json"],
         [("a/1-1/offline-run-1-a", "a", False)]),
        (["a/1-1/f/run-a.wandb", "a/1-1/f/run-a.wandb.synced", "b/2-1/g/run-b.wandb",
          "a/3-1/h/run-a.wandb"],
         [("a/1-1/f", "a", True), ("a/3-1/h", "a", False), ("b/2-1/g", "b", False)]),
        (["x/run-x.wandb.synced"], []),  # a marker alone is no folder
        (["x/files/output.log", "x/logs/debug.log"], []),
        (["run-top.wandb"], [("", "top", False)]),
        (["a/f/run-a.wandb", "a/f/run-a.wandbx", "a/f/run-b.wandb.synced"], [("a/f", "a", False)]),
    ],
)  # fmt: skip
def test_find_folders(files: list[str], expected: list[tuple[str, str, bool]]) -> None:
    assert [(f.rel, f.run_id, f.synced) for f in find_folders(files)] == expected


_segment = st.text("abc-_0123456789", min_size=1, max_size=6)


@given(st.lists(st.tuples(st.lists(_segment, min_size=1, max_size=3), _segment, st.booleans())))
def test_a_folder_is_pending_exactly_when_its_run_file_has_no_marker(
    folders: list[tuple[list[str], str, bool]],
) -> None:
    files: list[str] = []
    truth: dict[str, tuple[str, bool]] = {}
    for parts, run_id, synced in folders:
        rel = "/".join(parts)
        if rel in truth:
            continue
        truth[rel] = (run_id, synced)
        files.append(f"{rel}/run-{run_id}.wandb")
        files.append(f"{rel}/{METADATA_FILE}")
        if synced:
            files.append(f"{rel}/run-{run_id}.wandb{SYNCED_SUFFIX}")
    found = find_folders(reversed(files))
    assert {f.rel: (f.run_id, f.synced) for f in found} == truth
    assert [f.rel for f in found] == sorted(truth)


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        ("/tmp/r/wandb-offline/a/1/f/run-a.wandb", "/tmp/r/wandb-offline", "a/1/f/run-a.wandb"),
        ("/tmp/r/wandb-offline/a", "/tmp/r/wandb-offline/", "a"),
        ("file:///tmp/r/w/a/x", "/tmp/r/w", "a/x"),
        ("s3://bucket/run/wandb-offline/a/x", "s3://bucket/run/wandb-offline", "a/x"),
        ("gs://bucket/run/wandb-offline/a/x", "gcs://bucket/run/wandb-offline", "a/x"),
        ("/tmp/other/a", "/tmp/r", None),
        ("/tmp/rx/a", "/tmp/r", None),
    ],
)
def test_relative_to_root(path: str, root: str, expected: str | None) -> None:
    assert relative_to_root(path, root) == expected


def test_the_client_gets_the_plugins_retry_bounds_unless_the_environment_sets_them() -> None:
    bounds = client_bounds_env({})
    assert bounds["WANDB__GRAPHQL_RETRY_MAX"] == str(CLIENT_BOUNDS["x_graphql_retry_max"])
    assert "WANDB_INIT_TIMEOUT" not in bounds  # a sync starts no run
    assert {env_var(k) for k in CLIENT_BOUNDS if k != "init_timeout"} == set(bounds)
    mine = client_bounds_env({"WANDB__GRAPHQL_RETRY_MAX": "99"})
    assert "WANDB__GRAPHQL_RETRY_MAX" not in mine and "WANDB__FILE_STREAM_RETRY_MAX" in mine


@pytest.mark.parametrize(
    ("left", "base_url", "command"),
    [
        (["/tmp/r/a/1/f"], None, "`wandb sync /tmp/r/a/1/f`"),
        (["/a b", "file:///c"], "http://h", "`WANDB_BASE_URL=http://h wandb sync '/a b' /c`"),
        (["s3://b/r/a/1/f"], None, "and run `wandb sync <folder>`"),
    ],
)  # fmt: skip
def test_retry_hint_names_what_is_left_and_the_command(
    left: list[str], base_url: str | None, command: str
) -> None:
    hint = retry_hint(left, base_url)
    assert "run the sync task again" in hint and command in hint
    assert all(p in hint for p in left)


def test_the_sync_task_is_a_task_of_the_callers_module() -> None:
    import flyte

    env = flyte.TaskEnvironment(name="unit_sync")
    task = wandb_sync_task(env, name="my_sync", retries=2)
    assert task.func.__module__ == __name__ and task.func.__name__ == "my_sync"
    assert set(task.interface.inputs) == {"folders", "run_ids"}
    with pytest.raises(ValueError, match="Python identifier"):
        wandb_sync_task(env, name="not a name")


@pytest.mark.parametrize("env", ["not an env", None, object(), {"name": "e"}])
def test_the_sync_task_needs_a_task_environment(env: Any) -> None:
    with pytest.raises(TypeError, match=r"expected a flyte\.TaskEnvironment") as info:
        wandb_sync_task(env)
    assert repr(env) in str(info.value)


@pytest.mark.parametrize("bound", [-1, float("nan"), float("inf"), "60", True, None])
def test_a_bad_sync_timeout_is_refused(bound: Any) -> None:
    import flyte

    env = flyte.TaskEnvironment(name="unit_sync_bound")
    with pytest.raises(ValueError, match=r"sync_timeout=.*expected a number of seconds >= 0"):
        wandb_sync_task(env, name="bounded_sync", sync_timeout=bound)
