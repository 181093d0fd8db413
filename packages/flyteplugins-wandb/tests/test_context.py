"""Exact encoding of W&B settings in Flyte's string-only custom_context."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb._config import ContextEntries, wandb_config
from flyteplugins.wandb._context import (
    PARENT_KEY,
    PREFIX,
    current_custom_context,
    decode_entries,
    encode_entries,
    override_custom_context,
    parent_entries,
    read_parent,
    read_wandb_config,
)
from flyteplugins.wandb._settings import check_entity, check_project

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=6))
def test_entries_round_trip_exactly(values: dict[str, Any]) -> None:
    encoded = encode_entries("p/", values)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in encoded.items())
    expected = {k: v for k, v in values.items() if v is not None}
    assert decode_entries("p/", encoded) == expected


@given(st.text())
def test_any_string_stays_that_string(text: str) -> None:
    for field in ("name", "group", "notes", "job_type"):
        cfg = wandb_config(**{field: text})
        assert read_wandb_config(cfg) == {field: text}
    # project and entity: every name W&B accepts comes back exactly; the others are refused
    for field, check in (("project", check_project), ("entity", check_entity)):
        try:
            check(text)
        except ValueError:
            with pytest.raises(ValueError, match=field):
                wandb_config(**{field: text})
            continue
        assert read_wandb_config(wandb_config(**{field: text})) == {field: text}


@pytest.mark.parametrize("text", ["2024", "null", "true", "false", "1.5", "[]", "{}", '"q"'])
def test_strings_that_look_like_json_stay_strings(text: str) -> None:
    cfg = wandb_config(project=text, name=text, tags=[text])
    assert read_wandb_config(cfg) == {"project": text, "name": text, "tags": [text]}
    assert read_wandb_config(wandb_config(name="")) == {"name": ""}


def test_only_given_keys_are_written() -> None:
    assert dict(wandb_config()) == {}
    assert set(wandb_config(project="p", run_mode="new")) == {
        PREFIX + "project",
        PREFIX + "run_mode",
    }


def test_values_keep_their_types() -> None:
    cfg = wandb_config(
        config={"lr": 0.1, "layers": [1, 2], "name": "2024", "flag": False, "none": None},
        download_logs=False,
        tags=("a", "b"),
        resume="allow",
        save_code=True,
    )
    assert read_wandb_config(cfg) == {
        "config": {"lr": 0.1, "layers": [1, 2], "name": "2024", "flag": False, "none": None},
        "download_logs": False,
        "tags": ["a", "b"],
        "resume": "allow",
        "save_code": True,
    }


def test_result_merges_with_other_entries() -> None:
    cfg = wandb_config(project="p")
    merged = {**cfg, "team": "a"}
    assert merged["team"] == "a"
    assert read_wandb_config(merged) == {"project": "p"}
    assert isinstance(cfg, dict)
    assert isinstance(cfg, ContextEntries)


def test_unrelated_keys_are_ignored() -> None:
    ctx = {
        **wandb_config(entity="e"),
        "wandb_project": "someone else's",
        "wandb": "x",
        "team": "{not json",
        "wandb.project": "p",
    }
    assert read_wandb_config(ctx) == {"entity": "e"}


def test_our_keys_with_foreign_text_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"custom_context\['wandb/project'\]='my-project'"):
        read_wandb_config({"wandb/project": "my-project"})


def test_unset_marker_removes_a_setting() -> None:
    ctx = {**wandb_config(id="mine", project="p"), PREFIX + "id": "null"}
    assert read_wandb_config(ctx) == {"project": "p"}


def test_parent_entries_round_trip() -> None:
    entries = parent_entries("run-1", "https://h", None, "2024")
    assert list(entries) == [PARENT_KEY]
    assert read_parent(entries) == {
        "id": "run-1",
        "host": "https://h",
        "entity": None,
        "project": "2024",
    }
    assert read_wandb_config({**entries, **wandb_config(project="p")}) == {"project": "p"}
    assert read_parent({}) is None


def test_with_block_outside_a_task_overrides_and_restores() -> None:
    assert current_custom_context() == {}
    with wandb_config(project="outer", run_mode="new"):
        assert read_wandb_config() == {"project": "outer", "run_mode": "new"}
        with wandb_config(project="inner"):
            assert read_wandb_config() == {"project": "inner", "run_mode": "new"}
        assert read_wandb_config() == {"project": "outer", "run_mode": "new"}
    assert read_wandb_config() == {}


def test_same_entries_can_be_entered_twice() -> None:
    cfg = wandb_config(project="p")
    with cfg, cfg:
        assert read_wandb_config() == {"project": "p"}
    assert read_wandb_config() == {}


def test_override_restores_on_error() -> None:
    seen: list[dict[str, str]] = []

    def body() -> None:
        with override_custom_context({"k": "v"}):
            seen.append(current_custom_context())
            raise RuntimeError

    with pytest.raises(RuntimeError):
        body()
    assert seen == [{"k": "v"}]
    assert current_custom_context() == {}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"run_mode": "sometimes"}, ValueError, "run_mode 'sometimes'"),
        ({"rank_scope": ["global"]}, ValueError, "rank_scope"),
        ({"entity": 3}, TypeError, r"entity=3 \(int\)"),
        ({"tags": ["a", 1]}, TypeError, "tags="),
        ({"config": [1, 2]}, TypeError, r"config=\[1, 2\] \(list\)"),
        ({"config": {"x": float("nan")}}, ValueError, "non-finite"),
        ({"config": {1: "a"}}, TypeError, "keys must be str"),
        ({"id": "has space"}, ValueError, "invalid W&B run id"),
        ({"mode": "online-ish"}, ValueError, "'online', 'offline', 'disabled', 'shared'"),
        ({"settings": {"x": 1}}, TypeError, "settings= cannot travel"),
        ({"resume": object()}, TypeError, "resume="),
    ],
)
def test_bad_values_fail_early(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        wandb_config(**kwargs)


@pytest.mark.parametrize("name", ["api_key", "key", "WANDB_API_KEY"])
def test_an_api_key_is_refused_without_echoing_it(name: str) -> None:
    secret = "s" * 40
    with pytest.raises(ValueError, match="WANDB_API_KEY") as info:
        wandb_config(**{name: secret})
    assert secret not in str(info.value)
