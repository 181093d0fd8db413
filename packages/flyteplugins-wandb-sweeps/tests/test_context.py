"""wandb_sweep_config: exact encoding in custom_context, partial checks, the context manager."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb import wandb_config
from flyteplugins.wandb.ext import current_custom_context
from flyteplugins.wandb_sweeps import SweepConfigError, wandb_sweep_config
from flyteplugins.wandb_sweeps._context import (
    SweepRef,
    read_sweep,
    read_sweep_settings,
    split_settings,
    sweep_entries,
)


def test_values_decode_exactly_as_given() -> None:
    entries = wandb_sweep_config(
        method="grid",
        metric={"name": "loss", "goal": "minimize"},
        parameters={"lr": {"values": [0.1, 1, "1", None, True]}},
        project="2024",
        entity="null",
        name="true",
        prior_runs=["abc"],
        download_logs=True,
        run_cap=5,
    )
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in entries.items())
    assert all(k.startswith("wandb_sweep/") for k in entries)
    back = read_sweep_settings(entries)
    assert back["project"] == "2024"
    assert back["entity"] == "null"
    assert back["name"] == "true"
    assert back["parameters"] == {"lr": {"values": [0.1, 1, "1", None, True]}}
    assert back["run_cap"] == 5
    config, settings = split_settings(back)
    assert set(config) == {"method", "metric", "parameters", "name", "run_cap"}
    assert settings == {
        "project": "2024", "entity": "null", "prior_runs": ["abc"], "download_logs": True,
    }  # fmt: skip


def test_only_given_keys_are_written() -> None:
    assert dict(wandb_sweep_config(download_logs=True)) == {"wandb_sweep/download_logs": "true"}
    assert dict(wandb_sweep_config()) == {}


def test_merges_with_wandb_config_without_collisions() -> None:
    merged = {**wandb_config(project="a"), **wandb_sweep_config(project="b")}
    assert json.loads(merged["wandb/project"]) == "a"
    assert json.loads(merged["wandb_sweep/project"]) == "b"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"method": "hyper"}, SweepConfigError, "unknown sweep method 'hyper'"),
        ({"metric": {"name": "x", "goal": "up"}}, SweepConfigError, "'up' is not one of"),
        ({"parameters": {}}, SweepConfigError, "{} should be non-empty"),
        ({"project": 2024}, TypeError, "project=2024"),
        ({"download_logs": "yes"}, TypeError, "download_logs='yes'"),
        ({"prior_runs": "abc"}, SweepConfigError, "prior_runs must be a list"),
        ({"early_terminate": {"type": "x"}}, SweepConfigError, "hyperband"),
        ({"parameters": {"a": {"min": 0.0, "max": 1.0}}, "method": "grid"}, SweepConfigError,
         "grid"),
    ],
)  # fmt: skip
def test_bad_parts_fail_at_the_call(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        wandb_sweep_config(**kwargs)


def test_context_manager_outside_a_task_sets_and_restores() -> None:
    assert "wandb_sweep/method" not in current_custom_context()
    with wandb_sweep_config(method="grid"):
        assert read_sweep_settings()["method"] == "grid"
        with wandb_sweep_config(method="random"):
            assert read_sweep_settings()["method"] == "random"
        assert read_sweep_settings()["method"] == "grid"
    assert "method" not in read_sweep_settings()


def test_published_sweep_round_trips() -> None:
    ref = SweepRef("abc123", project="2024", entity=None, host="http://h", local=True)
    assert read_sweep(sweep_entries(ref)) == ref
    assert read_sweep({}) is None
    # the published sweep is bookkeeping, not a sweep setting
    assert read_sweep_settings(sweep_entries(ref)) == {}


@given(st.text(min_size=1, max_size=20))
def test_any_project_name_survives(project: str) -> None:
    assert read_sweep_settings(wandb_sweep_config(project=project))["project"] == project
