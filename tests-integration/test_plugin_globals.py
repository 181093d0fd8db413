"""wandb's module-level helpers (``wandb.run``, ``wandb.log``, ``wandb.config``, ...) per call.

Real Flyte local runs with the real wandb client offline; every assertion on rows and config reads
what W&B recorded in the ``run-<id>.wandb`` files. Sibling tasks run concurrently in this one
process (asyncio tasks, and worker threads for sync tasks), as Flyte's local mode runs them.
"""

from __future__ import annotations

import asyncio
import threading
import time
import types
import warnings
from pathlib import Path
from typing import Any

import flyte
import pytest
import wandb
from _plugin_helpers import by_id, only, reset_wandb, run_local, settled_runs, user_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from flyteplugins.wandb import _globals, get_wandb_run, wandb_config, wandb_init

env = flyte.TaskEnvironment(name="plugin_globals")

ROWS = 20
SIBLINGS = 6


def module_state() -> tuple[type, dict[str, Any]]:
    """The wandb module's class and every attribute it holds, by identity."""
    return type(wandb), dict(vars(wandb))


def assert_module_is(before: tuple[type, dict[str, Any]]) -> None:
    """The same class and the very same attribute objects (submodules imported since aside)."""
    cls, attrs = module_state()
    assert cls is before[0]
    assert not _globals.installed()
    assert before[1].keys() <= attrs.keys()
    assert [k for k, v in before[1].items() if attrs[k] is not v] == []
    added = [
        k for k in attrs.keys() - before[1].keys() if not isinstance(attrs[k], types.ModuleType)
    ]
    assert added == []


# ----------------------------------------------------------------------------- tasks


def log_rows(k: int, pause: Any) -> str:
    """Log ROWS rows through the module-level helpers, checking they stay this call's."""
    run = get_wandb_run()
    assert run is not None
    assert wandb.run is run
    for i in range(ROWS):
        assert wandb.config.k == k, (wandb.config.k, k)
        wandb.log({"k": wandb.config["k"], "i": i})
        wandb.summary["last_k"] = k
        pause()
        assert wandb.run is run
    return str(run.id)


@wandb_init(run_mode="new", config={"base": 1})
@env.task
async def async_sibling(k: int) -> str:
    run = get_wandb_run()
    assert run is not None
    assert wandb.run is run
    for i in range(ROWS):
        assert wandb.config.k == k, (wandb.config.k, k)
        wandb.log({"k": wandb.config["k"], "i": i})
        wandb.summary["last_k"] = k
        await asyncio.sleep(0.002)  # the other siblings run here
        assert wandb.run is run
    return str(run.id)


@wandb_init(run_mode="new", config={"base": 1})
@env.task
def sync_sibling(k: int) -> list[str]:
    rid = log_rows(k, lambda: time.sleep(0.002))
    return [rid, threading.current_thread().name]


async def with_k(k: int, call: Any) -> Any:
    with wandb_config(config={"k": k}):
        return await call(k)


@wandb_init(project="siblings")
@env.task
async def async_parent() -> list[str]:
    run = get_wandb_run()
    ids = await asyncio.gather(*(with_k(k, async_sibling) for k in range(SIBLINGS)))
    assert wandb.run is run
    wandb.log({"parent": 1})
    return [str(run.id), *ids]


@wandb_init(project="siblings")
@env.task
async def sync_parent() -> list[Any]:
    run = get_wandb_run()
    loop_thread = threading.current_thread().name
    out = await asyncio.gather(*(with_k(k, sync_sibling.aio) for k in range(SIBLINGS)))
    assert wandb.run is run
    wandb.log({"parent": 1})
    return [str(run.id), loop_thread, out]


@wandb_init(project="hf", config={"base": 1})
@env.task
def framework_pattern() -> str:
    # What Hugging Face's and Lightning's W&B callbacks do: reuse the current run if there is one.
    if wandb.run is None:
        wandb.init(project="framework-default")
    experiment = wandb.run
    assert experiment is get_wandb_run()
    wandb.config.update({"from_callback": True}, allow_val_change=True)
    experiment.log({"step": 1})
    wandb.log({"step": 2})
    return str(experiment.id)


@wandb_init(project="hf", config={"base": 1})
@env.task
def unconditional_init() -> list[Any]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = wandb.init(project="x", config={"lr": 0.1, "base": 2}, tags=["t"])
    assert run is get_wandb_run()
    assert wandb.run is run
    wandb.log({"loss": 0.5})
    assert wandb.config.lr == 0.1
    assert wandb.config.base == 1
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        again = wandb.init(project="hf", config={"base": 1, "more": 3})
    assert again is run
    found = [
        (type(w.message).__name__, issubclass(w.category, UserWarning), str(w.message))
        for w in caught
    ]
    return [str(run.id), found, len(quiet), dict(run.config)]


@wandb_init(project="hf")
@env.task
def separate_run_on_request() -> list[str]:
    task_run = get_wandb_run()
    other = wandb.init(project="other", reinit="create_new")
    assert other is not task_run
    other.log({"other": 1})
    assert wandb.run is task_run  # a create_new run does not become the current one
    wandb.log({"task": 1})
    other.finish()
    return [str(task_run.id), str(other.id)]


@env.task
async def undecorated_async_child() -> list[bool]:
    return [get_wandb_run() is None, wandb.run is None]


@env.task
def undecorated_sync_child() -> list[bool]:
    return [get_wandb_run() is None, wandb.run is None]


@flyte.trace
async def traced_sees() -> str:
    assert get_wandb_run() is wandb.run
    return str(wandb.run.id)


@wandb_init
def helper_sees() -> str:
    assert get_wandb_run() is wandb.run
    return str(wandb.run.id)


@wandb_init
@env.task
async def reusing_child() -> str:
    run = get_wandb_run()
    assert wandb.run is run  # the parent's live run, reused in this process
    wandb.log({"reused": 1})
    return str(run.id)


@wandb_init(project="scoped")
@env.task
async def scoped_parent() -> dict[str, Any]:
    run = get_wandb_run()
    with flyte.group("g"):
        in_group = str(wandb.run.id)
    return {
        "id": str(run.id),
        "async_child": await undecorated_async_child(),
        "sync_child": await undecorated_sync_child.aio(),
        "trace": await traced_sees(),
        "helper": helper_sees(),
        "group": in_group,
        "reused": await reusing_child(),
        "after": str(wandb.run.id),
    }


@env.task
async def own_run_in_undecorated_child() -> list[Any]:
    before = wandb.run is None
    own = wandb.init(project="own")  # wandb's default reinit: would return the parent's run
    current = wandb.run is own
    wandb.log({"own": 1})
    wandb.finish()
    return [before, current, str(own.id), wandb.run is None]


@wandb_init(project="parent")
@env.task
async def parent_with_own_child() -> list[Any]:
    run = get_wandb_run()
    wandb.log({"parent": 1})
    child = await own_run_in_undecorated_child()
    assert wandb.run is run
    wandb.log({"parent": 2})
    return [str(run.id), child]


@wandb_init(project="watched")
@env.task
def watched() -> list[Any]:
    return [_globals.installed(), type(wandb) is types.ModuleType, wandb.run is not None]


# ----------------------------------------------------------------------------- tests


def test_six_async_siblings_each_record_their_own_rows_and_config(wandb_offline: Path) -> None:
    before = module_state()
    parent_id, *ids = run_local(async_parent)
    assert len(set(ids)) == SIBLINGS and parent_id not in ids
    runs = by_id(wandb_offline)
    assert set(runs) == {parent_id, *ids}
    for k, rid in enumerate(ids):
        (rec,) = runs[rid]
        assert user_rows(rec) == [{"k": k, "i": i} for i in range(ROWS)]
        assert rec.config["k"] == k and rec.config["base"] == 1
        assert rec.summary["last_k"] == k
        assert rec.exit_code == 0
    (parent,) = runs[parent_id]
    assert user_rows(parent) == [{"parent": 1}]
    assert_module_is(before)


def test_six_sync_siblings_in_threads_each_record_their_own_rows(wandb_offline: Path) -> None:
    before = module_state()
    parent_id, loop_thread, out = run_local(sync_parent)
    ids = [rid for rid, _ in out]
    assert {thread for _, thread in out}.isdisjoint({loop_thread})  # worker threads
    assert len(set(ids)) == SIBLINGS
    runs = by_id(wandb_offline)
    assert set(runs) == {parent_id, *ids}
    for k, rid in enumerate(ids):
        (rec,) = runs[rid]
        assert user_rows(rec) == [{"k": k, "i": i} for i in range(ROWS)]
        assert rec.config["k"] == k
        assert rec.summary["last_k"] == k
    assert user_rows(runs[parent_id][0]) == [{"parent": 1}]
    assert_module_is(before)


def test_framework_pattern_logs_into_the_task_run(wandb_offline: Path) -> None:
    rid = run_local(framework_pattern)
    rec = only(wandb_offline)  # one run, not a second one started by the callback
    assert rec.run_id == rid
    assert rec.project == "hf"
    assert user_rows(rec) == [{"step": 1}, {"step": 2}]
    assert rec.config["from_callback"] is True and rec.config["base"] == 1


def test_unconditional_init_returns_the_task_run_and_names_what_it_ignored(
    wandb_offline: Path,
) -> None:
    rid, found, quiet, config = run_local(unconditional_init)
    ((kind, is_user_warning, message),) = found
    assert kind == "WandbInitInTaskWarning" and is_user_warning
    assert "project='x'" in message
    assert "tags=['t']" in message
    assert "'base'" in message  # the run already has base=1
    assert "'lr'" not in message  # a new key: applied
    assert quiet == 0  # nothing left out the second time: no warning
    assert config["lr"] == 0.1 and config["base"] == 1 and config["more"] == 3
    rec = only(wandb_offline)
    assert rec.run_id == rid
    assert rec.project == "hf"
    assert rec.tags == []
    assert user_rows(rec) == [{"loss": 0.5}]
    assert rec.config["lr"] == 0.1 and rec.config["base"] == 1 and rec.config["more"] == 3


def test_create_new_inside_a_task_is_a_separate_run(wandb_offline: Path) -> None:
    task_id, other_id = run_local(separate_run_on_request)
    runs = by_id(wandb_offline)
    assert set(runs) == {task_id, other_id}
    assert user_rows(runs[task_id][0]) == [{"task": 1}]
    assert user_rows(runs[other_id][0]) == [{"other": 1}]
    assert runs[other_id][0].project == "other"


def test_run_is_scoped_to_its_flyte_action(wandb_offline: Path) -> None:
    out = run_local(scoped_parent)
    # undecorated children see no run at all, as they would in their own process remotely
    assert out["async_child"] == [True, True]
    assert out["sync_child"] == [True, True]
    # traces, groups, decorated helpers and a child reusing the run stay on the task's run
    assert out["trace"] == out["helper"] == out["group"] == out["reused"] == out["id"]
    assert out["after"] == out["id"]
    rec = only(wandb_offline)
    assert user_rows(rec) == [{"reused": 1}]


def test_users_own_init_in_undecorated_child_starts_its_own_run(wandb_offline: Path) -> None:
    parent_id, (before, current, own_id, cleared) = run_local(parent_with_own_child)
    assert before and current and cleared
    assert own_id != parent_id
    runs = by_id(wandb_offline)
    assert set(runs) == {parent_id, own_id}
    assert user_rows(runs[parent_id][0]) == [{"parent": 1}, {"parent": 2}]
    assert user_rows(runs[own_id][0]) == [{"own": 1}]
    assert runs[own_id][0].project == "own"


def test_plain_wandb_outside_is_untouched_before_during_and_after(wandb_offline: Path) -> None:
    reset_wandb()
    before = module_state()
    assert not _globals.installed()
    own = wandb.init(project="mine")
    assert wandb.run is own
    wandb.log({"own": 1})
    # a decorated task while the user's own global run is open (no client teardown in between)
    flyte.init()
    installed, plain_class, had_run = flyte.with_runcontext(mode="local").run(watched).outputs()[0]
    assert installed and not plain_class and had_run
    assert wandb.run is own
    assert wandb.config is own.config
    wandb.log({"own": 2})
    wandb.finish()
    assert wandb.run is None
    # and a plain run after the task: what wandb alone does
    later = wandb.init(project="mine")
    assert wandb.run is later and later is not own
    wandb.log({"later": 1})
    wandb.finish()
    assert wandb.run is None
    recs = {r.run_id: r for r in settled_runs(wandb_offline)}
    assert user_rows(recs[str(own.id)]) == [{"own": 1}, {"own": 2}]
    assert user_rows(recs[str(later.id)]) == [{"later": 1}]
    assert len(recs) == 3
    cls, attrs = module_state()
    assert cls is before[0] and before[1].keys() <= attrs.keys()


def test_after_a_task_plain_wandb_works_as_without_the_plugin(wandb_offline: Path) -> None:
    run_local(framework_pattern)
    state = module_state()
    assert state[0] is types.ModuleType and not _globals.installed()
    with pytest.raises(wandb.Error):
        wandb.log({"no": "run"})  # wandb's own message: call wandb.init() first
    assert wandb.run is None
    run = wandb.init(project="plain")
    wandb.log({"plain": 1})
    assert wandb.summary is run.summary
    run.finish()
    assert wandb.run is None
    recs = settled_runs(wandb_offline)
    assert [user_rows(r) for r in recs if r.run_id == run.id] == [[{"plain": 1}]]


# ----------------------------------------------------------------------------- restore invariants


class StandIn:
    """A run object for the bookkeeping only: nothing calls it outside a decorated call."""

    _is_finished = False


@settings(max_examples=60)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7)), max_size=30))
def test_module_restored_exactly_after_the_last_release(ops: list[tuple[bool, int]]) -> None:
    """Any interleaving of binds and (repeated) releases: installed iff a run is live, and the
    module's class and every attribute are the very objects they were once none is."""
    before = module_state()
    live: list[_globals.Binding] = []
    done: list[_globals.Binding] = []
    for is_bind, pick in ops:
        if is_bind or not (live or done):
            live.append(_globals.bind(StandIn()))
        else:
            pool = live + done
            binding = pool[pick % len(pool)]
            _globals.release(binding)  # a second release of one binding is a no-op
            if binding in live:
                live.remove(binding)
                done.append(binding)
        assert _globals.installed() == bool(live)
        assert (type(wandb) is before[0]) == (not live)
        assert wandb.run is before[1]["run"]  # outside any call: wandb's own value
        assert wandb.log is before[1]["log"]
    for binding in live:
        _globals.release(binding)
    assert_module_is(before)


def test_writes_while_installed_land_where_wandb_keeps_them() -> None:
    before = module_state()
    binding = _globals.bind(StandIn())
    try:
        marker = object()
        wandb.alert = marker  # type: ignore[assignment]
        assert vars(wandb)["alert"] is marker and wandb.alert is marker
        wandb.alert = before[1]["alert"]
    finally:
        _globals.release(binding)
    assert_module_is(before)


def test_a_client_the_globals_do_not_fit_degrades_to_wandbs_own_rule(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wandb release whose internals differ (stood in for by a ``set_global`` that cannot be
    read): one warning, the module left as wandb made it, and the task's run still records what
    it logged through ``get_wandb_run()``."""

    def changed() -> tuple[str, ...]:
        raise AttributeError("module 'wandb.sdk.lib.module' has no attribute 'set_global'")

    @wandb_init(project="degraded")
    @env.task
    def logs_through_the_run() -> str:
        run = get_wandb_run()
        assert run is not None
        run.log({"step": 1})
        return str(run.id)

    monkeypatch.setattr(_globals, "_helper_names", changed)
    monkeypatch.setattr(_globals, "_classes", {})
    monkeypatch.setattr(_globals, "_degraded", [])
    before = module_state()
    with pytest.warns(_globals.WandbGlobalsUnavailable, match="set_global"):
        rid = run_local(logs_through_the_run)
    assert_module_is(before)
    rec = only(wandb_offline)
    assert rec.run_id == rid and rec.exit_code == 0
    assert user_rows(rec) == [{"step": 1}]
