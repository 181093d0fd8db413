"""Checks a sweep configuration before anything is created: with the ``[local]`` extra, with
``jsonschema`` against the schema W&B's ``sweeps`` engine ships (else the server validates), plus
what a schema cannot state (bayes needs a metric, a grid only enumerates discrete parameters,
``min`` < ``max``)."""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

MAX_PARALLEL_AGENTS: Final = 20
METHODS: Final = ("bayes", "grid", "random")
GRID_DISTRIBUTIONS: Final = ("constant", "categorical", "int_uniform", "q_uniform")


class SweepConfigError(ValueError):
    """A sweep configuration that W&B (or the local controller) cannot run."""


@functools.cache
def engine_schema() -> dict[str, Any] | None:
    """The configuration schema of the installed ``sweeps`` engine (``None``: not installed)."""
    spec = importlib.util.find_spec("sweeps")
    if (
        spec is None
        or not spec.submodule_search_locations
        or not importlib.util.find_spec("jsonschema")
    ):
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "config" / "schema.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _definitions(schema: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each distribution the schema knows -> the names of the definitions that describe it."""
    found: dict[str, list[str]] = {}
    for name, definition in schema["definitions"].items():
        for branch in [definition, *definition.get("anyOf", ())]:
            for dist in branch.get("properties", {}).get("distribution", {}).get("enum", ()):
                found[dist] = [
                    *found.get(dist, []),
                    *([name] if name not in found.get(dist, []) else []),
                ]
    return found


def _problem(schema: Mapping[str, Any], part: Mapping[str, Any], value: Any) -> str | None:
    """What the schema finds wrong with ``value`` against ``part`` (each alternative's complaint
    for an ``anyOf``), or ``None``."""
    import jsonschema  # type: ignore[import-untyped]

    validator = jsonschema.Draft7Validator({"definitions": schema["definitions"], **part})
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    leaves = [error] if error is not None else []
    while any(e.context for e in leaves):
        leaves = [c for e in leaves for c in (e.context or [e])]
    texts: list[str] = []
    for e in sorted(leaves, key=lambda e: -len(e.absolute_path)):
        where = "".join(f"[{p!r}]" for p in e.absolute_path)
        text = f"{e.message}{f' (at {where})' if where else ''}"
        if text not in texts and "'distribution' is a required" not in text:  # noise here
            texts.append(text)
    return "; ".join(texts[:3]) or (error.message if error is not None else None)


def infer_distribution(spec: Mapping[str, Any]) -> str:
    """The distribution W&B assigns to a parameter (given, or implied by its keys)."""
    if "distribution" in spec:
        return str(spec["distribution"])
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    return "int_uniform" if all(type(spec.get(k)) is int for k in ("min", "max")) else "uniform"


def _leaves(parameters: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if not isinstance(parameters, Mapping) or not parameters:
        where = f"nested parameters of {prefix[:-1]!r}" if prefix else "sweep parameters"
        raise SweepConfigError(
            f"{where} must be a non-empty dict of name -> spec, got {parameters!r}"
        )
    for name, spec in parameters.items():
        if isinstance(spec, Mapping) and "parameters" in spec:
            if len(spec) > 1:
                raise SweepConfigError(
                    f"parameter {prefix}{name!r} has nested 'parameters' and also "
                    f"{sorted(set(spec) - {'parameters'})}: a nested group holds only 'parameters'"
                )
            yield from _leaves(spec["parameters"], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", spec


def _check_parameters(parameters: Any, method: Any, schema: Mapping[str, Any] | None) -> None:
    if schema is not None:
        shape = dict(schema["definitions"]["parameters"], additionalProperties=True)
        if problem := _problem(schema, shape, parameters):
            raise SweepConfigError(f"sweep parameters {parameters!r}: {problem}")
    for name, spec in _leaves(parameters):
        if not isinstance(spec, Mapping):
            raise SweepConfigError(
                f"parameter {name!r} must be a dict such as {{'values': [...]}} or "
                f"{{'min': 0.0, 'max': 1.0}}, got {spec!r}"
            )
        if not any(k in spec for k in ("distribution", "value", "values", "min", "max")):
            raise SweepConfigError(
                f"parameter {name!r}: {dict(spec)!r} says neither what to try nor how to sample: "
                "give 'value', 'values', 'min' and 'max', a 'distribution', or nested 'parameters'"
            )
        dist = infer_distribution(spec)
        known = _definitions(schema) if schema is not None else {dist: []}
        if dist not in known:
            raise SweepConfigError(
                f"parameter {name!r}: unknown distribution {dist!r}: expected one of "
                f"{sorted(known)}"
            )
        refs = {"anyOf": [{"$ref": f"#/definitions/{d}"} for d in known[dist]]}
        if schema is not None and (problem := _problem(schema, refs, spec)):
            raise SweepConfigError(
                f"parameter {name!r} ({dist}): {dict(spec)!r} is not what the sweep engine "
                f"accepts: {problem}"
            )
        if "min" in spec and "max" in spec and not spec["min"] < spec["max"]:
            raise SweepConfigError(
                f"parameter {name!r}: 'min' ({spec['min']!r}) must be less than 'max' "
                f"({spec['max']!r})"
            )
        if "probabilities" in spec and len(spec["probabilities"]) != len(spec.get("values", ())):
            raise SweepConfigError(
                f"parameter {name!r}: 'probabilities' {spec['probabilities']!r} must give one "
                f"probability per value of {spec.get('values')!r}"
            )
        if method == "grid" and dist not in GRID_DISTRIBUTIONS:
            raise SweepConfigError(
                f"parameter {name!r} ({dist}) cannot be enumerated by a grid sweep: grid "
                f"parameters take the distributions {GRID_DISTRIBUTIONS}; use method 'random' or "
                "'bayes' to sample it"
            )


def check_prior_runs(value: object) -> None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) and x for x in value):
        raise SweepConfigError(f"prior_runs must be a list of W&B run ids (strings), got {value!r}")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_agent_count(n: object) -> int:
    """The number of parallel agents: an int from 1 to W&B's limit of 20."""
    if not _is_count(n) or n > MAX_PARALLEL_AGENTS:  # type: ignore[operator]
        raise ValueError(
            f"invalid number of sweep agents {n!r}: W&B allows 1 to {MAX_PARALLEL_AGENTS} "
            "agents at a time"
        )
    return n  # type: ignore[return-value]


def check_partial(config: Mapping[str, Any], *, fragment: bool = True) -> None:
    """Check each part that one ``wandb_sweep_config(...)`` / ``@wandb_sweep(...)`` call gives
    (the other parts may come from elsewhere). One rule spans parts: whoever sets
    ``method="bayes"`` gives its ``metric`` too."""
    schema = engine_schema()
    method = config.get("method")
    if method is not None and method not in METHODS:
        raise SweepConfigError(f"unknown sweep method {method!r}: expected one of {METHODS}")
    if method == "bayes" and config.get("metric") is None:
        raise SweepConfigError(
            "a bayes sweep needs a metric to optimise, e.g. metric={'name': 'loss', 'goal': "
            f"'minimize'}}{' (in the same call that sets the method)' if fragment else ''}"
        )
    if config.get("run_cap") is not None and not _is_count(config["run_cap"]):
        raise SweepConfigError(f"run_cap must be an integer >= 1, got {config['run_cap']!r}")
    for key, value in config.items():
        if key == "parameters" and value is not None:
            _check_parameters(value, method, schema)
            continue
        part = schema["properties"].get(key) if schema is not None else None
        if value is not None and part is not None and (problem := _problem(schema, part, value)):  # type: ignore[arg-type]
            raise SweepConfigError(f"sweep {key} {value!r}: {problem}")


def validate_sweep_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a complete sweep configuration (the dict given to ``wandb.sweep``); return a copy.

    Raises ``SweepConfigError`` naming the bad part, its value and what is allowed.
    """
    if not isinstance(config, Mapping):
        raise SweepConfigError(f"a sweep configuration must be a dict, got {config!r}")
    if not any(config.get(k) is not None for k in ("method", "metric", "parameters")):
        raise SweepConfigError(
            "no sweep configuration was given: pass wandb_sweep_config(method=..., "
            "parameters=..., ...) in the run's custom_context, or give them to @wandb_sweep(...)"
        )
    for key, example in (
        ("method", f"one of {METHODS}"),
        ("parameters", "{'lr': {'values': [0.01, 0.1]}}"),
    ):
        if config.get(key) is None:
            raise SweepConfigError(f"the sweep configuration has no {key!r}: give {example}")
    check_partial(config, fragment=False)
    return dict(config)
