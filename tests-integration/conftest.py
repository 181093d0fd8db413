"""Shared fixtures of the integration tests: isolated W&B folders, offline mode by default."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the real wandb client offline with every folder it writes inside ``tmp_path``."""
    for var in ("WANDB_API_KEY", "WANDB_SERVICE", "WANDB_RUN_ID", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".cache"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    return tmp_path
