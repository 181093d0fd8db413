"""Checks a W&B sweep configuration before anything is created.

The W&B server validates a sweep only when ``wandb.sweep`` reaches it, and the open-source engine
fails deep inside numpy when a parameter is malformed. Both are late and unclear, so every part of
the configuration is checked here, up front, with an error that names the bad key, the bad value
and what is allowed. The rules follow the W&B sweep configuration schema (the JSON schema shipped
with the ``sweeps`` engine), without needing that engine installed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

METHODS: Final = ("bayes", "grid", "random")
GOALS: Final = ("maximize", "minimize")
IMPUTES: Final = ("best", "latest", "worst")
MAX_PARALLEL_AGENTS: Final = 20

# distribution -> (required keys, optional keys)
DISTRIBUTIONS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "constant": (("value",), ()),
    "categorical": (("values",), ()),
    "categorical_w_probabilities": (("values", "probabilities"), ()),
    "int_uniform": (("min", "max"), ()),
    "uniform": (("min", "max"), ()),
    "q_uniform": (("min", "max"), ("q",)),
    "log_uniform": (("min", "max"), ()),
    "log_uniform_values": (("min", "max"), ()),
    "q_log_uniform": (("min", "max"), ("q",)),
    "q_log_uniform_values": (("min", "max"), ("q",)),
    "inv_log_uniform": (("min", "max"), ()),
    "inv_log_uniform_values": (("min", "max"), ()),
    "normal": ((), ("mu", "sigma")),
    "q_normal": ((), ("q", "mu", "sigma")),
    "log_normal": ((), ("mu", "sigma")),
    "q_log_normal": ((), ("q", "mu", "sigma")),
    "beta": ((), ("a", "b")),
    "q_beta": ((), ("q", "a", "b")),
}
# Parameters a grid can enumerate.
GRID_DISTRIBUTIONS: Final = ("constant", "categorical", "int_uniform", "q_uniform")
_PARAM_KEYS: Final = frozenset(
    {"distribution", "value", "values", "probabilities", "min", "max", "q", "mu", "sigma", "a", "b"}
)
_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_METRIC_KEYS: Final = ("name", "goal", "target", "impute")
_HYPERBAND_KEYS: Final = ("type", "min_iter", "max_iter", "s", "eta")


_BAYES_NEEDS_METRIC = (
    "a bayes sweep needs a metric to optimise, e.g. metric={'name': 'loss', 'goal': 'minimize'}"
)


class SweepConfigError(ValueError):
    """A sweep configuration that W&B (or the local controller) cannot run."""


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise SweepConfigError(
            f"unknown sweep method {method!r}: expected one of {_choices(METHODS)}"
        )
    return method


def check_metric(metric: object) -> dict[str, Any]:
    if not isinstance(metric, Mapping):
        raise SweepConfigError(
            f"sweep metric must be a dict like {{'name': 'loss', 'goal': 'minimize'}}, "
            f"got {metric!r}"
        )
    unknown = sorted(str(k) for k in metric if k not in _METRIC_KEYS)
    if unknown:
        raise SweepConfigError(
            f"unknown sweep metric key(s) {unknown}: allowed keys are {_choices(_METRIC_KEYS)}"
        )
    name = metric.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SweepConfigError(
            f"sweep metric needs a non-empty 'name' (the key your objective logs), got {name!r}"
        )
    goal = metric.get("goal")
    if goal not in GOALS:
        raise SweepConfigError(
            f"sweep metric {name!r} needs a 'goal' of {_choices(GOALS)}, got {goal!r}"
        )
    if "target" in metric and not _is_number(metric["target"]):
        raise SweepConfigError(
            f"sweep metric 'target' must be a finite number, got {metric['target']!r}"
        )
    if "impute" in metric and metric["impute"] not in IMPUTES:
        raise SweepConfigError(
            f"sweep metric 'impute' must be one of {_choices(IMPUTES)}, got {metric['impute']!r}"
        )
    return dict(metric)


def infer_distribution(name: str, spec: Mapping[str, Any]) -> str:
    """The distribution W&B assigns to a parameter spec (explicit or implied by its keys)."""
    if "distribution" in spec:
        dist = spec["distribution"]
        if dist not in DISTRIBUTIONS:
            raise SweepConfigError(
                f"parameter {name!r}: unknown distribution {dist!r}: expected one of "
                f"{_choices(tuple(DISTRIBUTIONS))}"
            )
        return str(dist)
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "min" in spec or "max" in spec:
        if _is_int(spec.get("min")) and _is_int(spec.get("max")):
            return "int_uniform"
        return "uniform"
    raise SweepConfigError(
        f"parameter {name!r}: {dict(spec)!r} says neither what to try nor how to sample: give "
        "'value', 'values', 'min' and 'max', a 'distribution', or nested 'parameters'"
    )


def _check_parameter(name: str, spec: object, method: str | None) -> None:
    if not isinstance(spec, Mapping):
        raise SweepConfigError(
            f"parameter {name!r} must be a dict such as {{'values': [...]}} or "
            f"{{'min': 0.0, 'max': 1.0}}, got {spec!r}"
        )
    if "parameters" in spec:
        extra = sorted(str(k) for k in spec if k != "parameters")
        if extra:
            raise SweepConfigError(
                f"parameter {name!r} has nested 'parameters' and also {extra}: a nested group "
                "holds only 'parameters'"
            )
        _check_parameters(spec["parameters"], method, prefix=f"{name}.")
        return
    unknown = sorted(str(k) for k in spec if k not in _PARAM_KEYS)
    if unknown:
        raise SweepConfigError(
            f"parameter {name!r}: unknown key(s) {unknown}: allowed keys are "
            f"{_choices(tuple(sorted(_PARAM_KEYS)))} or 'parameters'"
        )
    dist = infer_distribution(name, spec)
    required, optional = DISTRIBUTIONS[dist]
    missing = [k for k in required if k not in spec]
    if missing:
        raise SweepConfigError(f"parameter {name!r} ({dist}) is missing {missing}")
    allowed = {"distribution", *required, *optional}
    stray = sorted(str(k) for k in spec if k not in allowed)
    if stray:
        raise SweepConfigError(
            f"parameter {name!r} ({dist}) does not take {stray}: it takes {sorted(allowed)}"
        )
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise SweepConfigError(
                f"parameter {name!r}: 'values' must be a non-empty list, got {values!r}"
            )
        if "probabilities" in spec:
            probs = spec["probabilities"]
            if (
                not isinstance(probs, (list, tuple))
                or len(probs) != len(values)
                or not all(_is_number(p) and p >= 0 for p in probs)
                or not math.isclose(sum(probs), 1.0, abs_tol=1e-6)
            ):
                raise SweepConfigError(
                    f"parameter {name!r}: 'probabilities' must be {len(values)} non-negative "
                    f"numbers summing to 1, got {probs!r}"
                )
    for key in ("min", "max", "q", "mu", "sigma", "a", "b"):
        if key in spec and not _is_number(spec[key]):
            raise SweepConfigError(
                f"parameter {name!r}: {key!r} must be a finite number, got {spec[key]!r}"
            )
    if "min" in spec and "max" in spec and not spec["min"] < spec["max"]:
        raise SweepConfigError(
            f"parameter {name!r}: 'min' ({spec['min']!r}) must be less than 'max' ({spec['max']!r})"
        )
    if dist == "int_uniform" and not (_is_int(spec["min"]) and _is_int(spec["max"])):
        raise SweepConfigError(
            f"parameter {name!r} (int_uniform): 'min' and 'max' must be integers, got "
            f"{spec['min']!r} and {spec['max']!r}"
        )
    if dist.endswith("_values") and spec["min"] <= 0:
        raise SweepConfigError(
            f"parameter {name!r} ({dist}): 'min' must be > 0 (it is a value, not a log), "
            f"got {spec['min']!r}"
        )
    for key in ("q", "sigma", "a", "b"):
        if key in spec and spec[key] <= 0:
            raise SweepConfigError(f"parameter {name!r}: {key!r} must be > 0, got {spec[key]!r}")
    if method == "grid" and dist not in GRID_DISTRIBUTIONS:
        raise SweepConfigError(
            f"parameter {name!r} ({dist}) cannot be enumerated by a grid sweep: grid parameters "
            "take 'value', 'values', integer 'min'/'max', or distribution 'q_uniform'; use "
            "method 'random' or 'bayes' to sample it"
        )


def _check_parameters(parameters: object, method: str | None, prefix: str = "") -> None:
    if not isinstance(parameters, Mapping) or len(parameters) == 0:
        where = f"nested parameters of {prefix[:-1]!r}" if prefix else "sweep parameters"
        raise SweepConfigError(
            f"{where} must be a non-empty dict of name -> spec, got {parameters!r}"
        )
    for key, spec in parameters.items():
        if not isinstance(key, str) or not _NAME.match(key):
            raise SweepConfigError(
                f"invalid parameter name {prefix}{key!r}: names start with a letter or '_' and "
                "hold letters, digits, '_', '.', '-'"
            )
        _check_parameter(prefix + key, spec, method)


def check_parameters(parameters: object, method: str | None = None) -> dict[str, Any]:
    _check_parameters(parameters, method)
    assert isinstance(parameters, Mapping)
    return dict(parameters)


def check_early_terminate(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SweepConfigError(
            f"early_terminate must be a dict like {{'type': 'hyperband', 'min_iter': 3}}, "
            f"got {value!r}"
        )
    if value.get("type") != "hyperband":
        raise SweepConfigError(
            f"early_terminate type must be 'hyperband', got {value.get('type')!r}"
        )
    unknown = sorted(str(k) for k in value if k not in _HYPERBAND_KEYS)
    if unknown:
        raise SweepConfigError(
            f"unknown early_terminate key(s) {unknown}: allowed keys are "
            f"{_choices(_HYPERBAND_KEYS)}"
        )
    if "min_iter" not in value and not ("max_iter" in value and "s" in value):
        raise SweepConfigError(
            "early_terminate (hyperband) needs 'min_iter', or 'max_iter' and 's'"
        )
    for key in ("min_iter", "max_iter"):
        if key in value and not (_is_int(value[key]) and value[key] >= 1):
            raise SweepConfigError(
                f"early_terminate {key!r} must be an integer >= 1, got {value[key]!r}"
            )
    if "s" in value and not (_is_number(value["s"]) and value["s"] > 0):
        raise SweepConfigError(f"early_terminate 's' must be a number > 0, got {value['s']!r}")
    if "eta" in value and not (_is_number(value["eta"]) and value["eta"] > 1):
        raise SweepConfigError(f"early_terminate 'eta' must be a number > 1, got {value['eta']!r}")
    return dict(value)


def check_prior_runs(value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SweepConfigError(f"prior_runs must be a list of W&B run ids, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise SweepConfigError(f"prior_runs must hold run ids (strings), got {item!r}")
    return list(value)


def check_agent_count(n: object) -> int:
    """The number of parallel agents: an int from 1 to the specification's limit of 20."""
    if not _is_int(n) or not 1 <= n <= MAX_PARALLEL_AGENTS:  # type: ignore[operator]
        raise ValueError(
            f"invalid number of sweep agents {n!r}: W&B allows 1 to {MAX_PARALLEL_AGENTS} "
            "agents at a time"
        )
    assert isinstance(n, int)
    return n


def check_run_cap(value: object) -> int:
    """``run_cap``: the most trials the sweep may start, an integer >= 1."""
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise SweepConfigError(f"run_cap must be an integer >= 1, got {value!r}")
    assert isinstance(value, int)
    return value


def check_partial(config: Mapping[str, Any], *, fragment: bool = True) -> None:
    """Check what one ``wandb_sweep_config(...)`` / ``@wandb_sweep(...)`` call gives.

    Each part present is checked on its own (the other parts may come from elsewhere: the
    decorator's keywords win over the context's). One rule spans parts: whoever sets
    ``method="bayes"`` gives its ``metric`` too, because bayes cannot run without one and a
    metric only found missing when the task runs is found too late.
    """
    method = config.get("method")
    if method is not None:
        check_method(method)
    if config.get("metric") is not None:
        check_metric(config["metric"])
    elif method == "bayes":
        where = " (in the same call that sets the method)" if fragment else ""
        raise SweepConfigError(_BAYES_NEEDS_METRIC + where)
    if config.get("run_cap") is not None:
        check_run_cap(config["run_cap"])
    if config.get("parameters") is not None:
        check_parameters(config["parameters"], method if isinstance(method, str) else None)
    if config.get("early_terminate") is not None:
        check_early_terminate(config["early_terminate"])
    for key in ("name", "description", "program"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise SweepConfigError(f"sweep {key!r} must be a string, got {config[key]!r}")


def validate_sweep_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a complete sweep configuration (the dict given to ``wandb.sweep``) and return a copy.

    Raises ``SweepConfigError`` naming the problem: an unknown method, a metric without a name or
    a goal, an empty or malformed parameter space, a parameter a grid cannot enumerate, or a bayes
    sweep with no metric to optimise.
    """
    if not isinstance(config, Mapping):
        raise SweepConfigError(f"a sweep configuration must be a dict, got {config!r}")
    if not any(config.get(k) is not None for k in ("method", "metric", "parameters")):
        raise SweepConfigError(
            "no sweep configuration was given: pass wandb_sweep_config(method=..., "
            "parameters=..., ...) in the run's custom_context, or give them to @wandb_sweep(...)"
        )
    if config.get("method") is None:
        raise SweepConfigError(
            f"the sweep configuration has no 'method': expected one of {_choices(METHODS)}"
        )
    if config.get("parameters") is None:
        raise SweepConfigError(
            "the sweep configuration has no 'parameters': give at least one, e.g. "
            "parameters={'lr': {'values': [0.01, 0.1]}}"
        )
    check_partial(config, fragment=False)
    return dict(config)
