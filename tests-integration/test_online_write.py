"""The online write path of @wandb_init, checked on what the loopback W&B server recorded.

Real local Flyte runs, the real wandb 0.31.0 client, the project's own server on 127.0.0.1
(``wandb_online``) and openwandb for the shared-mode run across processes.
"""

from __future__ import annotations

from typing import Any

import flyte
import pytest
import wandb
from _online_tasks import (
    _attempts,
    flaky_task,
    in_other_process,
    parent_with_remote_child,
    pod_attempt,
    write_task,
)
from _plugin_helpers import run_local
from servers import OpenWandbServer, WandbTestServer

from flyteplugins.wandb import Wandb, wandb_config, wandb_init
from flyteplugins.wandb_core import make_base

pytestmark = pytest.mark.online


def test_task_run_records_id_project_entity_config_tags_and_rows(
    wandb_online: WandbTestServer,
) -> None:
    out = run_local(write_task, 4, False, name="online-write-ok")
    rec = wandb_online.run("ent", "online-write", out["id"])
    assert out["id"] == make_base(out["run_name"], out["action_name"])
    assert rec["state"] == "finished"
    assert rec["exitcode"] == 0
    assert rec["tags"] == ["t1", "t2"]
    assert rec["config"]["lr"] == 0.5
    flyte_link = rec["config"]["flyte"]
    assert flyte_link["run_name"] == out["run_name"] == "online-write-ok"
    assert flyte_link["action_name"] == out["action_name"]
    assert flyte_link["attempt"] == 0
    assert [(r["_step"], r["i"], r["loss"]) for r in rec["history"]] == [
        (i, i, 1.0 / (i + 1)) for i in range(4)
    ]
    # what wandb.Api reads back is what was written
    api_run = wandb.Api().run(f"ent/online-write/{out['id']}")
    assert api_run.state == "finished"
    assert api_run.config["lr"] == 0.5
    assert [r["i"] for r in api_run.scan_history(keys=["i"])] == [0, 1, 2, 3]


def test_failing_task_is_failed_on_the_server_and_keeps_its_rows(
    wandb_online: WandbTestServer,
) -> None:
    with pytest.raises(Exception, match="failed on purpose"):
        run_local(write_task, 2, True, name="online-write-fail")
    (rec,) = [
        r
        for r in wandb_online.runs("ent", "online-write")
        if r["config"].get("flyte", {}).get("run_name") == "online-write-fail"
    ]
    assert rec["state"] == "failed"
    assert rec["exitcode"] == 1
    assert [r["i"] for r in rec["history"]] == [0, 1]


def test_retried_attempt_resumes_the_same_run_and_history_continues(
    wandb_online: WandbTestServer,
) -> None:
    _attempts.clear()
    out = run_local(flaky_task, name="online-retry")
    assert len(_attempts) == 2
    assert out["resumed"] is True
    runs = wandb_online.runs("ent", "online-resume")
    assert [r["name"] for r in runs] == [out["id"]]
    (rec,) = runs
    assert rec["state"] == "finished"
    assert [(r["_step"], r["attempt"], r["i"]) for r in rec["history"]] == [
        (0, 1, 0),
        (1, 1, 1),
        (2, 1, 2),
        (3, 2, 0),
        (4, 2, 1),
        (5, 2, 2),
    ]


def test_attempt_in_a_new_process_resumes_the_run_of_the_lost_one(
    wandb_online: WandbTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(Exception, match="pod of attempt 0 was lost"):
        run_local(pod_attempt, name="online-retry-pod")
    (first,) = wandb_online.runs("ent", "online-resume-pod")
    assert first["state"] == "failed"
    monkeypatch.setenv("FLYTE_ATTEMPT_NUMBER", "1")  # what Flyte sets in the retried pod
    out = in_other_process("attempt", "online-retry-pod")
    assert out["id"] == first["name"]
    assert out["resumed"] is True
    (rec,) = wandb_online.runs("ent", "online-resume-pod")
    assert rec["state"] == "finished"
    assert [(r["_step"], r["attempt"], r["i"]) for r in rec["history"]] == [
        (0, 0, 0),
        (1, 0, 1),
        (2, 0, 2),
        (3, 1, 0),
        (4, 1, 1),
        (5, 1, 2),
    ]


def test_parent_and_child_in_separate_processes_share_one_run(
    openwandb_server: OpenWandbServer, wandb_online_at: Any
) -> None:
    # openwandb implements shared mode for several writer processes; the child runs in its own
    # process (as in a cluster pod) while the parent's run is live, and joins it as a secondary.
    wandb_online_at(openwandb_server)
    out = run_local(parent_with_remote_child, name="online-shared")
    child = out["child"]
    assert child["id"] == out["id"]
    assert child["primary"] is False
    assert child["mode"] == "shared"
    assert child["label"]
    metrics = openwandb_server.metrics(out["id"])
    assert set(metrics["keys"]) >= {"parent_value", "child_value"}
    assert [m["value"] for m in metrics["metrics_by_key"]["child_value"]] == [7]
    assert sorted(m["value"] for m in metrics["metrics_by_key"]["parent_value"]) == [1, 2]
    (run,) = openwandb_server.runs("ent", "online-shared")["runs"]
    assert run["run_id"] == out["id"]
    assert run["config"]["who"] == {"value": "parent"}
    assert run["state"] == "finished"


def test_shared_child_in_another_process_on_the_own_server(wandb_online: WandbTestServer) -> None:
    out = run_local(parent_with_remote_child, name="online-shared-own")
    assert out["child"]["id"] == out["id"]
    rec = wandb_online.run("ent", "online-shared", out["id"])
    # The parent streams as a plain run; the child joined with its own (async) shared stream.
    assert rec["writers"] == 1
    assert sorted(r.get("parent_value", 0) for r in rec["history"]) == [0, 1, 2]
    assert [r["child_value"] for r in rec["history"] if "child_value" in r] == [7]
    assert rec["state"] == "finished"  # the secondary did not finish the run early


@wandb_init(project="online-links", entity="ent")
@flyte.TaskEnvironment(name="online_links").task
def linked() -> dict[str, Any]:
    from flyteplugins.wandb import get_wandb_run

    run = get_wandb_run()
    assert run is not None
    action = flyte.ctx().action
    return {
        "url": run.url,
        "run_name": action.run_name,
        "action_name": action.name,
        "context": dict(flyte.ctx().custom_context or {}),
    }


def test_wandb_link_renders_the_url_the_client_reports(wandb_online: WandbTestServer) -> None:
    ctx = wandb_config(host=wandb_online.url)
    out = run_local(linked, name="online-link", custom_context=dict(ctx))
    (link,) = [lk for lk in linked.links if isinstance(lk, Wandb)]
    rendered = link.get_link(
        run_name=out["run_name"],
        project="flyte-project",
        domain="development",
        context=dict(ctx),
        parent_action_name="a0",
        action_name=out["action_name"],
        pod_name="pod",
    )
    assert rendered == out["url"]
    assert rendered.startswith(wandb_online.url + "/ent/online-links/runs/")


def test_wandb_sweep_link_renders_the_url_the_client_reports(
    wandb_online: WandbTestServer,
) -> None:
    from flyteplugins.wandb_sweeps import (
        WandbSweep,
        get_wandb_sweep_id,
        wandb_sweep,
        wandb_sweep_config,
    )

    @wandb_sweep
    @flyte.TaskEnvironment(name="online_sweep_link").task
    def sweeping() -> dict[str, Any]:
        return {
            "sweep_id": get_wandb_sweep_id(),
            "context": dict(flyte.ctx().custom_context or {}),
        }

    ctx = {
        **wandb_config(project="online-sweep-link", entity="ent", host=wandb_online.url),
        **wandb_sweep_config(method="grid", parameters={"lr": {"values": [0.1]}}),
    }
    out = run_local(sweeping, name="online-sweep-link", custom_context=ctx)
    client_url = wandb.Api().sweep(f"ent/online-sweep-link/{out['sweep_id']}").url
    # inside the task (and for its children) the link names the sweep itself
    assert WandbSweep().url(out["context"]) == client_url
    (link,) = [lk for lk in sweeping.links if isinstance(lk, WandbSweep)]
    assert link.url(out["context"]) == client_url
