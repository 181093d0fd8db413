"""Tasks the plugin's integration tests run in a separate Python process.

``python -m _plugin_tasks <scenario> [args]`` (with this folder on ``sys.path``) runs one
scenario as a real local Flyte run and prints one JSON line with what it observed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import flyte

from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="plugin_tasks")


@wandb_init
@env.task
def rank_task() -> bool:
    run = get_wandb_run()
    if run is not None:
        run.log({"rank_logged": 1})
    return run is not None


@wandb_init(name="child-name", tags=["child"], config={"child": True})
@env.task
def child_elsewhere(x: int) -> list[Any]:
    run = get_wandb_run()
    assert run is not None
    run.log({"from_other_process": x})
    return [run.id, run.project, run.settings.x_label, run.settings.x_primary]


@wandb_init(entity="team")
def terminated(hold_lock: bool = False) -> str:
    """Logs a row, then the process gets SIGTERM (optionally while the plugin holds its lock)."""
    from flyteplugins.wandb import _state

    run = get_wandb_run()
    assert run is not None
    run.log({"before_sigterm": 1})
    if hold_lock:
        with _state.live_lock:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    return "not reached"


def _like_the_task_runtime(fn: Any, *args: Any) -> Any:
    """Call ``fn`` as Flyte's remote task runtime calls a sync task: in a worker thread, while
    the main thread runs the runtime's asyncio loop."""
    import asyncio

    async def main() -> Any:
        return await asyncio.to_thread(fn, *args)

    return asyncio.run(main())


def _run(task: Any, *args: Any, context: dict[str, str] | None = None) -> Any:
    flyte.init()
    kwargs: dict[str, Any] = {"mode": "local", "name": "other-process"}
    if context is not None:
        kwargs["custom_context"] = context
    outputs = flyte.with_runcontext(**kwargs).run(task, *args).outputs()
    return outputs[0]


def main(argv: list[str]) -> None:
    scenario = argv[0]
    if scenario == "rank":
        logged = _run(rank_task)
        print(json.dumps({"logged": logged, "wandb_imported": "wandb" in sys.modules}))
    elif scenario == "child":
        context = json.loads(argv[1])
        print(json.dumps({"child": _run(child_elsewhere, 5, context=context)}))
    elif scenario == "sigterm":
        terminated()  # on the main thread
    elif scenario == "sigterm-thread":
        _like_the_task_runtime(terminated)
    elif scenario == "sigterm-locked":
        terminated(True)
    elif scenario == "guest":
        before_env, before_sig = dict(os.environ), signal.getsignal(signal.SIGTERM)
        import _plugin_tasks_guest  # a module with decorated tasks

        after_import = dict(os.environ) == before_env and (
            signal.getsignal(signal.SIGTERM) is before_sig
        )
        out = _run(_plugin_tasks_guest.guest_task)
        after_env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
        print(
            json.dumps(
                {
                    "import_unchanged": after_import,
                    "during": out,
                    "sigterm_restored": signal.getsignal(signal.SIGTERM) is before_sig,
                    "env_restored": after_env
                    == {k: v for k, v in before_env.items() if k != "WANDB_SERVICE"},
                }
            )
        )
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
