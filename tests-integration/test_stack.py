"""The stack the integration tests run on is the one nox asked for."""

from __future__ import annotations

import importlib.metadata as md
import os


def test_installed_versions_match_the_session() -> None:
    wanted = os.environ.get("FLYTE_TEST_VERSION")
    if wanted:
        assert md.version("flyte") == wanted
    assert md.version("flyteplugins-wandb").startswith("3.")
    assert md.version("flyteplugins-wandb-core").startswith("0.2")
