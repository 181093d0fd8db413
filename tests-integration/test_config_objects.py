"""One ``wandb_config(...)`` object, made once at module level, used as ``with CFG:`` everywhere.

Flyte's local mode runs sibling tasks concurrently in one process (asyncio tasks and worker
threads). Each ``with`` block is opened and closed in its own task or thread, nested and
re-entered; what W&B recorded for every child shows it got exactly the settings of its own
blocks.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import flyte
import pytest
from _plugin_helpers import records, run_local, user_rows

from flyteplugins.wandb import get_wandb_context, get_wandb_run, wandb_config, wandb_init

env = flyte.TaskEnvironment(name="config_objects")

CFG = wandb_config(project="cfg-objects", tags=["shared"], entity="team")
NAMED = {i: wandb_config(name=f"child-{i}") for i in range(6)}


@wandb_init
@env.task
async def child(i: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"i": i})
    ctx = get_wandb_context()
    assert ctx is not None
    return f"{run.project}|{run.name}|{ctx.name}"


@wandb_init
@env.task
def child_sync(i: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"i": i})
    return f"{run.project}|{run.name}"


@env.task
async def fan_out(n: int) -> list[str]:
    async def one(i: int) -> str:
        with CFG:
            await asyncio.sleep(0.02 * (n - i))  # exits interleave with the siblings' enters
            with NAMED[i], CFG:  # nested and re-entered
                out = await child(i)
            assert get_wandb_context().name is None  # type: ignore[union-attr]
            return out

    return list(await asyncio.gather(*(one(i) for i in range(n))))


@env.task
async def fan_out_threads(n: int) -> list[str]:
    barrier = threading.Barrier(n)

    def one(i: int) -> str:
        with CFG:
            barrier.wait(timeout=60)  # every thread is inside its block at once
            with NAMED[i]:
                return child_sync(i)

    return list(await asyncio.gather(*(asyncio.to_thread(one, i) for i in range(n))))


def _recorded(root: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for rec in records(root):
        assert rec.project == "cfg-objects" and rec.tags == ["shared"], rec
        assert rec.name is not None
        out[rec.name] = [row["i"] for row in user_rows(rec)]
    return out


def test_concurrent_asyncio_tasks_share_one_config_object(wandb_offline: Path) -> None:
    outs = run_local(fan_out, 4)
    assert outs == [f"cfg-objects|child-{i}|child-{i}" for i in range(4)]
    assert _recorded(wandb_offline) == {f"child-{i}": [i] for i in range(4)}


def test_concurrent_threads_share_one_config_object(wandb_offline: Path) -> None:
    outs = run_local(fan_out_threads, 3)
    assert outs == [f"cfg-objects|child-{i}" for i in range(3)]
    assert _recorded(wandb_offline) == {f"child-{i}": [i] for i in range(3)}


def test_plain_threads_outside_any_task() -> None:
    seen: dict[int, list[object]] = {}
    barrier = threading.Barrier(4)

    def body(i: int) -> None:
        with CFG:
            with NAMED[i]:
                barrier.wait(timeout=30)
                ctx = get_wandb_context()
                assert ctx is not None
                seen[i] = [ctx.project, ctx.name]
            barrier.wait(timeout=30)
            seen[i].append(get_wandb_context().name)  # type: ignore[union-attr]
        seen[i].append(get_wandb_context())

    threads = [threading.Thread(target=body, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert seen == {i: ["cfg-objects", f"child-{i}", None, None] for i in range(4)}
    assert get_wandb_context() is None


def test_exits_out_of_order_are_refused_naming_the_rule() -> None:
    inner = wandb_config(name="inner")
    CFG.__enter__()
    inner.__enter__()
    with pytest.raises(RuntimeError, match="innermost first"):
        CFG.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    CFG.__exit__(None, None, None)
    assert get_wandb_context() is None
    with pytest.raises(RuntimeError, match="without a matching enter"):
        CFG.__exit__(None, None, None)
