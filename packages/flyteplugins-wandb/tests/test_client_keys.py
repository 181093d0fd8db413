"""Finding the API key where the wandb client finds it (never reading it into a message)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyteplugins.wandb._client_env import has_api_key, netrc_has_key

KEY = "a" * 40


@pytest.fixture(autouse=True)
def no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    import wandb.sdk.lib.wbauth.authenticate as auth

    monkeypatch.setattr(auth, "_session_auth", None)  # no `wandb.login` in this process


def test_nothing_found() -> None:
    assert not has_api_key("https://api.wandb.ai")


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert has_api_key("https://api.wandb.ai")


def test_netrc_entry_of_the_server_host(tmp_path: Path) -> None:
    (tmp_path / "netrc").write_text(f"machine wandb.example.com\n  login user\n  password {KEY}\n")
    assert netrc_has_key("https://wandb.example.com")
    assert has_api_key("https://wandb.example.com")
    assert not has_api_key("https://api.wandb.ai")


def test_settings_key() -> None:
    import wandb

    assert has_api_key("https://api.wandb.ai", wandb.Settings(api_key=KEY))
