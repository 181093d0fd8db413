"""Sweep configuration checks: every malformed part is refused with an error that names it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb_sweeps import (
    MAX_PARALLEL_AGENTS,
    SweepConfigError,
    validate_sweep_config,
    wandb_sweep,
    wandb_sweep_config,
)
from flyteplugins.wandb_sweeps._validate import (
    check_agent_count,
    engine_schema,
    infer_distribution,
)

LOSS = {"name": "loss", "goal": "minimize"}


def cfg(method: str = "random", parameters: Any = None, **kw: Any) -> dict[str, Any]:
    return {
        "method": method,
        "metric": LOSS,
        "parameters": parameters if parameters is not None else {"lr": {"values": [1, 2]}},
        **kw,
    }


VALID = [
    cfg("grid", {"a": {"values": [1, 2]}, "b": {"value": "x"}}),
    cfg("grid", {"a": {"min": 1, "max": 4}}),
    cfg("grid", {"a": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25}}),
    cfg("grid", {"opt": {"parameters": {"lr": {"values": [0.1, 0.2]}}}}),
    cfg("random", {"a": {"min": 0.0, "max": 1.0}}),
    cfg("random", {"a": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}}),
    cfg("random", {"a": {"distribution": "normal", "mu": 0, "sigma": 2}}),
    cfg("random", {"a": {"values": ["x", "y"], "probabilities": [0.25, 0.75]}}),
    cfg("bayes", {"a": {"distribution": "beta", "a": 2, "b": 3}}),
    cfg("bayes", early_terminate={"type": "hyperband", "min_iter": 3}),
    cfg("bayes", metric={"name": "acc", "goal": "maximize", "target": 0.99}),
    cfg("random", run_cap=10, description="d", name="n"),
]


@pytest.mark.parametrize("config", VALID)
def test_valid_configs_pass_unchanged(config: dict[str, Any]) -> None:
    assert validate_sweep_config(config) == config


INVALID = [
    # checked against the sweeps engine's own JSON schema: the bad value and what is allowed
    (cfg("grdi"), "unknown sweep method 'grdi': expected one of ('bayes', 'grid', 'random')"),
    ({"parameters": {"a": {"value": 1}}}, "no 'method'"),
    ({"method": "grid"}, "no 'parameters'"),
    (cfg("random", {}), "sweep parameters {}: {} should be non-empty"),
    (cfg("random", []), "[] is not of type 'object'"),
    (cfg("random", metric={"goal": "minimize"}), "'name' is a required property"),
    (
        cfg("random", metric={"name": "loss", "goal": "min"}),
        "'min' is not one of ['minimize', 'maximize']",
    ),
    (cfg("random", metric="loss"), "sweep metric 'loss': 'loss' is not of type 'object'"),
    (cfg("random", metric={**LOSS, "bogus": 1}), "('bogus' was unexpected)"),
    ({"method": "bayes", "parameters": {"a": {"min": 0.0, "max": 1.0}}}, "needs a metric"),
    (cfg("random", {"a": {"values": []}}), "parameter 'a' (categorical)"),
    (cfg("random", {"a": {"values": "abc"}}), "'abc' is not of type 'array'"),
    (cfg("random", {"a": {"min": 1.0}}), "'max' is a required property"),
    (cfg("random", {"a": {"min": 2.0, "max": 1.0}}), "must be less than 'max'"),
    (cfg("random", {"a": {"min": "0", "max": 1.0}}), "'0' is not of type 'number' (at ['min'])"),
    (
        cfg("random", {"a": {"distribution": "gauss"}}),
        "unknown distribution 'gauss': expected one of ['beta', ",
    ),
    (
        cfg("random", {"a": {"distribution": "int_uniform", "min": 0.5, "max": 3}}),
        "0.5 is not of type 'integer'",
    ),
    (
        cfg("random", {"a": {"distribution": "log_uniform_values", "min": 0, "max": 1}}),
        "minimum of 0",
    ),
    (cfg("random", {"a": {"distribution": "normal", "sigma": -1}}), "-1 is less than the minimum"),
    (cfg("random", {"a": {"values": [1], "max": 3}}), "('max' was unexpected)"),
    (cfg("random", {"a": {"valeus": [1]}}), "neither what to try nor how to sample"),
    (cfg("random", {"a": {}}), "neither what to try nor how to sample"),
    (cfg("random", {"a": 3}), "parameter 'a' must be a dict"),
    (cfg("random", {"1a": {"value": 1}}), "'1a' does not match"),
    (cfg("random", {"a": {"values": [1, 2], "probabilities": [0.5]}}), "'probabilities'"),
    (cfg("grid", {"a": {"min": 0.0, "max": 1.0}}), "cannot be enumerated by a grid"),
    (cfg("grid", {"o": {"parameters": {"b": {"distribution": "normal"}}}}), "'o.b' (normal)"),
    (cfg("random", {"o": {"parameters": {}}}), "nested parameters of 'o'"),
    (cfg("random", {"o": {"parameters": {"b": {"value": 1}}, "value": 2}}), "holds only"),
    (cfg("random", early_terminate={"type": "median"}), "'median' is not one of ['hyperband']"),
    (cfg("random", early_terminate={"type": "hyperband"}), "'min_iter' is a required property"),
    (cfg("random", early_terminate={"type": "hyperband", "min_iter": 0}), "minimum of 1"),
    (cfg("random", early_terminate={"type": "hyperband", "min_iter": 2, "eta": 1}), "minimum of 1"),
    (cfg("random", name=3), "sweep name 3: 3 is not of type 'string'"),
    (cfg("random", run_cap=0), "run_cap must be an integer >= 1"),
    (cfg("random", run_cap=2.5), "run_cap must be an integer >= 1"),
    ({}, "no sweep configuration was given"),
    ({"project": "p"}, "no sweep configuration was given"),
]


@pytest.mark.parametrize(("config", "message"), INVALID)
def test_invalid_configs_name_the_problem(config: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepConfigError) as info:
        validate_sweep_config(config)
    assert message in str(info.value)


def test_infer_distribution() -> None:
    assert infer_distribution({"value": 1}) == "constant"
    assert infer_distribution({"values": [1]}) == "categorical"
    assert infer_distribution({"min": 1, "max": 2}) == "int_uniform"
    assert infer_distribution({"min": 1, "max": 2.0}) == "uniform"


def test_the_schema_is_the_installed_engines() -> None:
    import sweeps.config.schema as engine

    assert engine_schema() == engine.sweep_config_jsonschema


@pytest.mark.parametrize("n", [0, -1, 21, 100, 2.0, True, "4", None])
def test_agent_count_limit(n: Any) -> None:
    with pytest.raises(ValueError, match=f"1 to {MAX_PARALLEL_AGENTS} agents"):
        check_agent_count(n)


@given(st.integers(min_value=1, max_value=MAX_PARALLEL_AGENTS))
def test_agent_counts_within_limit(n: int) -> None:
    assert check_agent_count(n) == n


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
        st.lists(st.one_of(st.integers(), st.text(max_size=5), st.booleans()), min_size=1),
        min_size=1,
        max_size=4,
    )
)
def test_any_categorical_grid_is_valid(space: dict[str, list[Any]]) -> None:
    params = {k: {"values": v} for k, v in space.items()}
    assert validate_sweep_config(cfg("grid", params))["parameters"] == params


# What a single wandb_sweep_config(...) or @wandb_sweep(...) call gives is refused at that call
# when the engine would refuse it later, naming the parameter.
AT_THE_CALL = [
    ({"method": "bayes", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}, "needs a metric"),
    ({"method": "bayes"}, "in the same call that sets the method"),
    ({"parameters": {}}, "sweep parameters {}: {} should be non-empty"),
    ({"parameters": {"lr": {}}}, "parameter 'lr': {} says neither what to try"),
    ({"parameters": {"lr": {"values": []}}}, "parameter 'lr' (categorical)"),
    ({"parameters": {"lr": {"distribution": "uniform"}}}, "'min' is a required property"),
    ({"parameters": {"lr": {"max": 1.0}}}, "parameter 'lr' (uniform)"),
    ({"parameters": {"o": {"parameters": {"b": {}}}}}, "parameter 'o.b'"),
    ({"method": "grid", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}, "'lr' (uniform) cannot"),
    ({"run_cap": 0}, "run_cap must be an integer >= 1"),
]


@pytest.mark.parametrize(("given", "message"), AT_THE_CALL)
def test_wandb_sweep_config_refuses_at_the_call(given: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepConfigError) as info:
        wandb_sweep_config(**given)
    assert message in str(info.value)


@pytest.mark.parametrize(("given", "message"), AT_THE_CALL)
def test_wandb_sweep_refuses_at_decoration(given: dict[str, Any], message: str) -> None:
    with pytest.raises(SweepConfigError) as info:
        wandb_sweep(**given)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("whole", "message"),
    [
        ({"method": "grid"}, "no 'parameters'"),
        ({"parameters": {"lr": {"value": 1}}}, "no 'method'"),
        ({"method": "random", "metric": LOSS}, "no 'parameters'"),
    ],
)
def test_a_whole_sweep_dict_is_checked_whole_at_decoration(
    whole: dict[str, Any], message: str
) -> None:
    with pytest.raises(SweepConfigError, match=message):
        wandb_sweep(sweep=whole)


def test_parts_that_other_parts_complete_are_accepted() -> None:
    # the rest may come from the context (the decorator's keywords win over it)
    assert wandb_sweep_config(metric=LOSS)
    assert wandb_sweep_config(method="grid")
    assert wandb_sweep_config(method="bayes", metric=LOSS)
    wandb_sweep(method="random")
    wandb_sweep(parameters={"lr": {"values": [1]}})
