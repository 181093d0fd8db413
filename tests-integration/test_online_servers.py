"""Both loopback servers answer the real wandb 0.31.0 client (fixtures of servers.py)."""

from __future__ import annotations

from typing import Any

import pytest
from servers import OpenWandbServer, WandbTestServer

pytestmark = pytest.mark.online


def _log_ten(project: str, run_id: str) -> Any:
    import wandb

    run = wandb.init(
        project=project,
        entity="ent",
        id=run_id,
        group="g",
        config={"lr": 0.1, "name": "2024"},
        tags=["a", "b"],
        reinit="create_new",
    )
    for i in range(10):
        run.log({"loss": 1.0 / (i + 1)})
    url = run.url
    run.finish()
    return url


def test_own_server_records_a_run_and_serves_it_back(
    wandb_online: WandbTestServer,
) -> None:
    import wandb

    url = _log_ten("servers-own", "own1")
    rec = wandb_online.run("ent", "servers-own", "own1")
    assert rec["state"] == "finished"
    assert rec["exitcode"] == 0
    assert rec["config"] == {"lr": 0.1, "name": "2024"}
    assert rec["tags"] == ["a", "b"]
    assert rec["group"] == "g"
    assert [r["_step"] for r in rec["history"]] == list(range(10))
    assert "config.yaml" in rec["files"]
    assert url == f"{wandb_online.url}/ent/servers-own/runs/own1"

    api_run = wandb.Api().run("ent/servers-own/own1")
    assert api_run.config == {"lr": 0.1, "name": "2024"}
    assert [r["_step"] for r in api_run.scan_history()] == list(range(10))
    assert {f.name for f in api_run.files()} >= {"config.yaml", "wandb-metadata.json"}


def test_openwandb_records_a_run(openwandb_server: OpenWandbServer, wandb_online_at: Any) -> None:
    wandb_online_at(openwandb_server)
    _log_ten("servers-ow", "ow1")
    (run,) = openwandb_server.runs("ent", "servers-ow")["runs"]
    assert run["run_id"] == "ow1"
    assert run["state"] == "finished"
    assert run["tags"] == ["a", "b"]
    metrics = openwandb_server.metrics("ow1")
    assert [m["value"] for m in metrics["metrics_by_key"]["loss"]] == [
        1.0 / (i + 1) for i in range(10)
    ]
    config = openwandb_server.config("ow1")["config"]
    assert config["lr"] == {"value": 0.1}
    assert config["name"] == {"value": "2024"}  # stays a string
