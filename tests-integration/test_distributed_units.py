"""Decoration-time detection of distributed tasks and the worker-side helpers, without processes.

The tasks here are real Flyte task templates built with the real ``Elastic`` config of
``flyteplugins-pytorch`` and Flyte's own ``ClusteredTaskEnvironment``; their links are rendered
the way Flyte renders them at submit time (``get_link``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flyte
import pytest

try:
    from flyte.clustered import ClusteredTaskEnvironment, JaxRun
except ImportError:  # flyte < 2.10 (the lowest supported flyte): no JaxRun clustered runtime
    ClusteredTaskEnvironment = JaxRun = None  # type: ignore[assignment,misc]

from flyteplugins.pytorch.task import Elastic
from flyteplugins.wandb import Wandb, wandb_config, wandb_init
from flyteplugins.wandb._distributed import (
    GPU_SETTING,
    clean_worker_environment,
    shape_of_config,
    visible_gpu_ids,
    worker_settings,
)
from flyteplugins.wandb._shared_finish import FINISH_TIMEOUT_ENV, SharedFinish, finish_timeout
from flyteplugins.wandb_core import Topology, plan

HOST = "https://wandb.example.com"


def _urls(
    task: Any, run: str = "r1", action: str = "a0", ctx: dict[str, str] | None = None
) -> list[str]:
    links = [link for link in task.links if isinstance(link, Wandb)]
    return [
        link.get_link(
            run_name=run,
            project="p",
            domain="d",
            context=ctx or {},
            parent_action_name="",
            action_name=action,
            pod_name="",
        )
        for link in links
    ]


def _elastic_task(name: str, nnodes: int | str, nproc: int, **deco: Any) -> Any:
    env = flyte.TaskEnvironment(
        name=f"units_{name}", plugin_config=Elastic(nnodes=nnodes, nproc_per_node=nproc)
    )

    def body() -> None:
        return None

    body.__name__ = body.__qualname__ = f"body_{name}"
    return wandb_init(project="proj", entity="ent", host=HOST, **deco)(env.task(body))


# -- shape detection -------------------------------------------------------------------------


def test_the_real_elastic_config_is_recognised() -> None:
    assert shape_of_config(Elastic(nnodes="1:4", nproc_per_node=8)) == ("1:4", 8)


def test_a_look_alike_config_is_not_elastic() -> None:
    class Elastic:  # same class name and fields, not the plugin's class
        nnodes = 2
        nproc_per_node = 2

    assert shape_of_config(Elastic()) is None
    assert shape_of_config(None) is None


def test_a_malformed_elastic_nnodes_fails_naming_it() -> None:
    with pytest.raises(ValueError, match="'two'"):
        shape_of_config(Elastic(nnodes="two", nproc_per_node=2))


@pytest.mark.skipif(
    JaxRun is None, reason="flyte.clustered with JaxRun needs flyte >= 2.10 (lowest-flyte run)"
)
def test_flyte_clustered_torchrun_and_jax_environments_are_recognised() -> None:
    env = ClusteredTaskEnvironment(name="units_cluster", replicas=3, nproc_per_node=4)

    @env.task
    def clustered() -> None:
        return None

    assert shape_of_config(clustered.plugin_config) == (3, 4)
    jax_env = ClusteredTaskEnvironment(
        name="units_jax", replicas=2, nproc_per_node=1, runtime=JaxRun()
    )

    @jax_env.task
    def jaxed() -> None:
        return None

    assert shape_of_config(jaxed.plugin_config) == (2, 1)


# -- links -----------------------------------------------------------------------------------


def test_global_scope_links_the_one_run() -> None:
    task = _elastic_task("g", 2, 4)
    assert _urls(task) == [f"{HOST}/ent/proj/runs/r1-a0"]


def test_worker_scope_links_one_run_per_worker_for_the_range_maximum() -> None:
    task = _elastic_task("w", "1:3", 2, rank_scope="worker")
    assert _urls(task) == [f"{HOST}/ent/proj/runs/r1-a0-worker-{i}" for i in range(3)]


def test_new_mode_links_the_groups() -> None:
    assert _urls(_elastic_task("ng", 2, 2, run_mode="new")) == [f"{HOST}/ent/proj/groups/r1-a0"]
    assert _urls(_elastic_task("nw", 2, 2, run_mode="new", rank_scope="worker")) == [
        f"{HOST}/ent/proj/groups/r1-a0-worker-{i}" for i in range(2)
    ]


def test_single_node_worker_scope_is_one_link() -> None:
    assert _urls(_elastic_task("s", 1, 4, rank_scope="worker")) == [f"{HOST}/ent/proj/runs/r1-a0"]


def test_context_rank_scope_is_read_at_submit_time() -> None:
    task = _elastic_task("ctx", 2, 2)
    ctx = dict(wandb_config(rank_scope="worker"))
    # The decorator did not fix the scope: the submitter's context decides it.
    assert _urls(task, ctx=ctx)[0] == f"{HOST}/ent/proj/runs/r1-a0-worker-0"


def test_override_plugin_config_recomputes_the_links() -> None:
    task = _elastic_task("ov", 1, 2, rank_scope="worker")
    assert len(_urls(task)) == 1
    bigger = task.override(plugin_config=Elastic(nnodes=4, nproc_per_node=2))
    assert _urls(bigger) == [f"{HOST}/ent/proj/runs/r1-a0-worker-{i}" for i in range(4)]
    assert len(_urls(task)) == 1  # the original is unchanged
    # ... and again on the overridden task
    smaller = bigger.override(plugin_config=Elastic(nnodes=2, nproc_per_node=2))
    assert len(_urls(smaller)) == 2


def test_override_links_keeps_ours_next_to_the_callers() -> None:
    task = _elastic_task("ol", 2, 2, rank_scope="worker")

    class Dashboard:
        name = "dashboard"
        icon_uri = ""

        def get_link(self, **kwargs: Any) -> str:
            return "https://dash.example.com"

    dash = Dashboard()
    new = task.override(links=(dash,))
    assert new.links[0] is dash
    assert _urls(new) == [f"{HOST}/ent/proj/runs/r1-a0-worker-{i}" for i in range(2)]
    # The wrapped function travelled along: the override still starts W&B.
    assert getattr(new.func, "__flyteplugins_wandb_init__", None) is not None


# -- worker hygiene --------------------------------------------------------------------------


def test_inherited_service_and_run_id_are_removed() -> None:
    env = {"WANDB_SERVICE": "3-1234-unix-/tmp/x.sock", "WANDB_RUN_ID": "launcher", "A": "b"}
    assert clean_worker_environment(env, pid=99) == ["WANDB_SERVICE", "WANDB_RUN_ID"]
    assert env == {"A": "b"}


def test_own_service_token_is_kept() -> None:
    env = {"WANDB_SERVICE": "3-99-unix-/tmp/x.sock"}
    assert clean_worker_environment(env, pid=99) == []
    assert env == {"WANDB_SERVICE": "3-99-unix-/tmp/x.sock"}


def test_sweep_agent_variables_are_kept() -> None:
    env = {
        "WANDB_RUN_ID": "trial-7",
        "WANDB_SWEEP_ID": "sw1",
        "WANDB_SWEEP_PARAM_PATH": "/tmp/p.yaml",
    }
    before = dict(env)
    assert clean_worker_environment(env, pid=1) == []
    assert env == before


# -- per-rank GPU ----------------------------------------------------------------------------


def test_gpu_of_the_local_rank() -> None:
    t = Topology(rank=3, world_size=4, local_rank=1, local_world_size=2, worker_index=1)
    assert visible_gpu_ids({}, 2) == [0, 1]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "2,3"}, 2) == [2, 3]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "GPU-abc,GPU-def"}, 2) is None
    assert visible_gpu_ids({}, 0) is None
    six_seven = {"CUDA_VISIBLE_DEVICES": "6,7"}
    assert worker_settings(t, six_seven, gpu_count=2) == {"x_stats_gpu_device_ids": [7]}
    assert worker_settings(t, {}, {"x_stats_gpu_device_ids": [0]}, gpu_count=2) == {}
    assert worker_settings(t, {}, gpu_count=0) == {}
    assert worker_settings(None, {}, gpu_count=2) == {}


def test_the_gpu_setting_exists_in_the_installed_wandb() -> None:
    import wandb

    assert GPU_SETTING in wandb.Settings.model_fields


def test_device_count_agrees_with_torch() -> None:
    import torch

    assert visible_gpu_ids({}) == (list(range(torch.cuda.device_count())) or None)


# -- shared-mode finish ----------------------------------------------------------------------


def test_shared_finish_knows_its_secondaries() -> None:
    topo = Topology(rank=2, world_size=4, local_rank=0, local_world_size=2, worker_index=1)
    p = plan("shared", "worker", topo, "r-a0")
    sync = SharedFinish.for_plan(p, topo, "r-a0", {"TORCHELASTIC_RUN_ID": "r"})
    assert sync is not None
    assert (sync.primary, sync.secondaries, sync.has_primary) == (True, (3,), True)
    glob = plan("shared", "global", topo, "r-a0")
    gsync = SharedFinish.for_plan(glob, topo, "r-a0", {})
    assert gsync is not None and (gsync.primary, gsync.secondaries) == (False, (1, 2, 3))
    # Joining a parent's run: the parent (another process) is the primary; no one waits.
    joined = plan("shared", "global", topo, "r-a0", parent_id="parent-run")
    jsync = SharedFinish.for_plan(joined, topo, "r-a0", {}, parent_id="parent-run")
    assert jsync is not None and not jsync.has_primary
    assert SharedFinish.for_plan(plan("new", "global", topo, "b"), topo, "b", {}) is None


def test_finish_timeout_is_validated() -> None:
    assert finish_timeout({}) == 300.0
    assert finish_timeout({FINISH_TIMEOUT_ENV: "12.5"}) == 12.5
    with pytest.raises(ValueError, match="'soon'"):
        finish_timeout({FINISH_TIMEOUT_ENV: "soon"})
    with pytest.raises(ValueError, match="must be > 0"):
        finish_timeout({FINISH_TIMEOUT_ENV: "0"})


def test_no_store_means_no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a torch job (no agent store, no process group) finishing does not block."""
    for var in ("TORCHELASTIC_USE_AGENT_STORE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    sync = SharedFinish("r", 0, True, (1,), True, "ns", 1.0)
    assert sync.before_finish(0) == 0
    sync.after_finish(0)
    assert os.environ.get("TORCHELASTIC_USE_AGENT_STORE") is None


def test_local_run_of_an_elastic_task_is_one_plain_run(wandb_offline: Path) -> None:
    """Flyte's local mode runs an Elastic task inline, in one process: one run, no ranks."""
    from _plugin_helpers import run_local, settled_runs

    env = flyte.TaskEnvironment(
        name="units_local_elastic", plugin_config=Elastic(nnodes=2, nproc_per_node=2)
    )

    @wandb_init(project="local-elastic", rank_scope="worker")
    @env.task
    def inline() -> str:
        from flyteplugins.wandb import get_distributed_info, get_wandb_run

        run = get_wandb_run()
        assert run is not None
        assert get_distributed_info() is None
        run.log({"x": 1})
        return str(run.id)

    run_id = run_local(inline, name="localel")
    (rec,) = settled_runs(wandb_offline)
    assert rec.run_id == run_id
    assert run_id.startswith("localel-")
    assert [row["x"] for row in rec.history] == [1]
