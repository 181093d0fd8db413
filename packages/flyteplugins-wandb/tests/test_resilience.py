"""Bounds, messages and checks of ``_resilience`` and ``_failures`` (the end-to-end behaviour
against a server that dies is in tests-integration/test_online_failures.py)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import wandb

from flyteplugins.wandb import _failures as f
from flyteplugins.wandb import _resilience as r
from flyteplugins.wandb import wandb_config, wandb_init
from flyteplugins.wandb._settings import check_finish_timeout


@pytest.mark.parametrize("value", [0, 0.5, 30, 600.0])
def test_finish_timeout_accepts_seconds(value: float) -> None:
    check_finish_timeout(value)
    assert wandb_config(finish_timeout=value)["wandb/finish_timeout"] == json.dumps(value)


@pytest.mark.parametrize("value", [-1, "30", True, float("nan"), float("inf"), [1]])
def test_finish_timeout_rejects_what_is_not_seconds(value: Any) -> None:
    with pytest.raises(ValueError, match="finish_timeout=") as caught:
        wandb_config(finish_timeout=value)
    assert repr(value) in str(caught.value)
    with pytest.raises(ValueError, match="finish_timeout="):
        wandb_init(finish_timeout=value)


def test_offline_fallback_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="offline_fallback='yes'"):
        wandb_config(offline_fallback="yes")  # type: ignore[arg-type]
    assert wandb_config(offline_fallback=True)["wandb/offline_fallback"] == "true"


def test_plugin_settings_are_taken_out_of_the_init_keywords() -> None:
    kwargs: dict[str, Any] = {"project": "p", "finish_timeout": 5, "offline_fallback": True}
    res = r.pop_plugin_settings(kwargs)
    assert kwargs == {"project": "p"}
    assert res == r.Resilience(finish_timeout=5.0, offline_fallback=True)
    assert r.pop_plugin_settings({}) == r.Resilience()


def test_env_var_names_are_the_ones_the_client_reads() -> None:
    settings = wandb.Settings()
    settings.update_from_env_vars({r.env_var(name): "7" for name in r.CLIENT_BOUNDS})
    for name in r.CLIENT_BOUNDS:
        assert getattr(settings, name) == 7, name
    settings.update_from_env_vars({r.env_var("finish_timeout"): "12"})
    assert settings.finish_timeout == 12


def test_bounds_fill_only_what_the_user_left_unset() -> None:
    settings = wandb.Settings(x_graphql_retry_max=9)
    applied = r.apply_bounds(
        settings, r.Resilience(), environ={"WANDB__FILE_STREAM_RETRY_MAX": "1"}
    )
    assert settings.x_graphql_retry_max == 9  # the user's Settings win
    assert "x_file_stream_retry_max" not in applied  # the user's variable wins
    assert settings.x_file_transfer_retry_max == r.CLIENT_BOUNDS["x_file_transfer_retry_max"]
    assert settings.init_timeout == r.CLIENT_BOUNDS["init_timeout"]
    assert settings.finish_timeout == r.DEFAULT_FINISH_TIMEOUT


def test_finish_timeout_precedence() -> None:
    mine = wandb.Settings(finish_timeout=100)
    r.apply_bounds(mine, r.Resilience(), environ={})
    assert mine.finish_timeout == 100
    from_env = wandb.Settings()
    r.apply_bounds(from_env, r.Resilience(), environ={"WANDB_FINISH_TIMEOUT": "50"})
    assert "finish_timeout" not in from_env.model_fields_set  # left to the variable
    plugin = wandb.Settings(finish_timeout=100)
    r.apply_bounds(plugin, r.Resilience(finish_timeout=3), environ={})
    assert plugin.finish_timeout == 3


def test_server_failures_are_told_by_the_client_error_classes() -> None:
    # What wandb 0.31's init raises: Error for a refused connection, CommError for a server
    # that never answers (checked against real servers in tests-integration).
    assert f.is_server_failure(wandb.errors.Error("anything"))
    assert f.is_server_failure(wandb.errors.CommError("anything"))
    assert not f.is_server_failure(wandb.errors.UsageError("connection refused"))
    assert not f.is_server_failure(wandb.errors.AuthenticationError("timed out"))
    assert not f.is_server_failure(Exception("connection refused"))  # the text is not read


def test_messages_never_carry_the_api_key() -> None:
    key = "k" * 40
    env = {"WANDB_API_KEY": key}
    assert r.redact(f"failed with {key} inside", env) == "failed with *** inside"
    err = f.unreachable("http://h:1", 3.0, Exception("boom"))
    assert "http://h:1" in str(err) and "offline_fallback=True" in str(err)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_reports_a_dead_server_within_its_bounds() -> None:
    settings = SimpleNamespace(x_graphql_retry_max=1, x_graphql_retry_wait_max_seconds=0.1)
    reason = f.probe(f"http://127.0.0.1:{_closed_port()}", settings, environ={})
    assert reason is not None and "2 attempts" in reason


def test_probe_accepts_any_http_answer_below_500() -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert f.probe(url, SimpleNamespace(), environ={}) is None
    finally:
        server.shutdown()
        server.server_close()


def test_a_finish_that_ran_into_its_limit_is_reported() -> None:
    settings = SimpleNamespace(mode="online", finish_timeout=10.0, sync_dir="/x", base_url="b")
    run = SimpleNamespace(id="r", settings=settings)
    assert f.report_incomplete_upload(run, 2.0) is None  # well within the limit
    with pytest.warns(f.WandbUploadIncomplete, match="wandb sync"):
        assert f.report_incomplete_upload(run, 10.0) is not None
    # a writer of a shared run: its own finish_timeout is its share of the job's budget
    writer = SimpleNamespace(
        id="r", settings=SimpleNamespace(**{**vars(settings), "finish_timeout": 4.0})
    )
    assert f.report_incomplete_upload(writer, 9.0, limit=10.0, share=4.0, own_s=2.0) is None
    with pytest.warns(f.WandbUploadIncomplete, match="share"):
        f.report_incomplete_upload(writer, 9.0, limit=10.0, share=4.0, own_s=4.0)


def test_complete_offline_runs_are_not_reported(tmp_path: Path) -> None:
    run = SimpleNamespace(id="r", _finish_timed_out=True, settings=SimpleNamespace(mode="offline"))
    assert f.report_incomplete_upload(run, 1.0) is None
