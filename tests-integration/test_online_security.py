"""The W&B API key never leaves the Authorization header.

A real local Flyte run logs online to the project's own test server, which records every request
(method, path, headers without Authorization, body). The key, and its Basic-auth encoding, must
not appear in: those requests, the run's files on the server and on disk, the rendered links,
the task's custom_context, the run's config, or the text of any error the plugin raises.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import flyte
import pytest
from _plugin_helpers import run_local
from servers import DUMMY_API_KEY, WandbTestServer

from flyteplugins.wandb import Wandb, get_wandb_run, wandb_config, wandb_init

pytestmark = pytest.mark.online

env = flyte.TaskEnvironment(name="online_security")
FORMS = (DUMMY_API_KEY, base64.b64encode(f"api:{DUMMY_API_KEY}".encode()).decode())


@wandb_init(project="online-secrets", entity="ent")
@env.task
def leaky_candidate(fail: bool) -> dict[str, Any]:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": 0.5})
    print("console output of the task")
    if fail:
        raise RuntimeError("failing on purpose after logging")
    return {
        "id": run.id,
        "dir": run.settings.sync_dir,
        "context": dict(flyte.ctx().custom_context or {}),
        "config": dict(run.config),
        "action_name": flyte.ctx().action.name,
    }


def _assert_clean(where: str, text: str) -> None:
    for form in FORMS:
        assert form not in text, f"the API key appears in {where}"


def test_api_key_only_ever_travels_in_the_auth_header(
    wandb_online: WandbTestServer, tmp_path: Path
) -> None:
    ctx = dict(wandb_config(host=wandb_online.url))
    out = run_local(leaky_candidate, False, name="online-secrets", custom_context=ctx)
    with pytest.raises(Exception) as failed:
        run_local(leaky_candidate, True, name="online-secrets-fail", custom_context=ctx)

    requests = [r for r in wandb_online.requests() if "online-secrets" in json.dumps(r)]
    assert requests, "the server saw the runs"
    assert all(r["has_auth"] for r in requests if r["path"] == "/graphql")
    _assert_clean("the server's request log", json.dumps(wandb_online.requests()))

    rec = wandb_online.run("ent", "online-secrets", out["id"])
    _assert_clean("the run's config and summary on the server", json.dumps(rec))
    files_root = wandb_online.data_dir / "files"
    for path in files_root.rglob("*"):
        if path.is_file():
            _assert_clean(f"the uploaded file {path.name}", path.read_bytes().decode("latin-1"))
    for path in Path(out["dir"]).rglob("*"):
        if path.is_file():
            _assert_clean(f"the local run file {path.name}", path.read_bytes().decode("latin-1"))

    _assert_clean("custom_context", json.dumps(out["context"]))
    _assert_clean("the run's config", json.dumps(out["config"]))
    link = Wandb().get_link(
        run_name="online-secrets",
        project="p",
        domain="d",
        context=out["context"],
        parent_action_name="a0",
        action_name=out["action_name"],
        pod_name="pod",
    )
    assert link.startswith(wandb_online.url)
    _assert_clean("the rendered link", link)
    _assert_clean("the failed task's error", f"{failed.value!r} {failed.value}")


@wandb_init(project="online-secrets", entity="ent")
@env.task
def unreachable() -> int:
    return 1


def test_api_key_not_in_the_server_down_error(make_wandb_server: Any, wandb_online_at: Any) -> None:
    server: WandbTestServer = make_wandb_server()
    server.stop()
    wandb_online_at(server)
    with pytest.raises(Exception) as caught:
        run_local(unreachable, name="online-secrets-down")
    assert server.url in str(caught.value)
    chain: BaseException | None = caught.value
    while chain is not None:
        _assert_clean("the server-down error", f"{chain!r} {chain}")
        chain = chain.__cause__ or chain.__context__
