"""Sweep settings in Flyte's ``custom_context`` (the plugin's exact encoding), and the sweep of
the running code: ``wandb_sweep_config`` stores each setting under ``wandb_sweep/<name>``; a
``@wandb_sweep`` task publishes its sweep under ``wandb_sweep/~sweep`` for its child tasks."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from flyteplugins.wandb import wandb_config
from flyteplugins.wandb.ext import (
    ContextEntries,
    current_custom_context,
    decode_entries,
    decode_value,
    effective_mode,
    encode_entries,
    encode_value,
    read_wandb_config,
)

from ._state import SweepRef, current
from ._validate import SweepConfigError, check_partial, check_prior_runs

PREFIX: Final = "wandb_sweep/"
SWEEP_KEY: Final = "wandb_sweep/~sweep"
CONFIG: Final = ("method", "metric", "parameters", "name", "early_terminate")
# settings of the sweep itself, not part of the W&B sweep configuration dict
SETTINGS: Final = ("project", "entity", "prior_runs", "download_logs", "local_controller")


def check_settings(values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if not isinstance(key, str) or key.startswith("~"):
            raise SweepConfigError(f"{key!r} is not a sweep setting")
        if key in ("project", "entity", "name") and not isinstance(value, str):
            raise TypeError(f"{key}={value!r} ({type(value).__name__}): expected a str")
        if key == "local_controller" and not isinstance(value, bool):
            raise TypeError(f"local_controller={value!r} ({type(value).__name__}): expected a bool")
    if values.get("download_logs") is not None:  # the plugin's rule: True/False or a folder
        wandb_config(download_logs=values["download_logs"])
    if values.get("prior_runs") is not None:
        check_prior_runs(values["prior_runs"])


def wandb_sweep_config(
    method: str | None = None,
    metric: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    project: str | None = None,
    entity: str | None = None,
    prior_runs: list[str] | None = None,
    name: str | None = None,
    download_logs: bool | str | os.PathLike[str] | None = None,
    early_terminate: dict[str, Any] | None = None,
    local_controller: bool | None = None,
    **extra: Any,
) -> WandbSweepConfig:
    """A W&B sweep's configuration as Flyte ``custom_context`` entries: pass it to
    ``flyte.with_runcontext(custom_context=...)`` (merged with ``wandb_config`` as ``{**a,
    **b}``), or use ``with wandb_sweep_config(...):`` in a task for the code and child tasks in
    the block. ``method``, ``metric``, ``parameters``, ``name``, ``early_terminate`` and other
    keywords (``run_cap``, ...) form the configuration given to ``wandb.sweep``; ``project``,
    ``entity``, ``prior_runs`` say where it is created; ``download_logs`` (``True`` or a folder)
    downloads every trial's logs after the sweep task; ``local_controller=True`` uses the local
    controller online too. Every part given is checked now; ``cfg.method`` etc. read it back,
    ``cfg.to_sweep_config()`` gives the dict."""
    values = {k: v for k, v in locals().items() if k != "extra"}  # the named arguments
    return WandbSweepConfig(encode_entries(PREFIX, _normalize({**values, **extra})))


def _normalize(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in values.items() if v is not None}
    check_settings(out)
    check_partial(out)
    if isinstance(out.get("download_logs"), os.PathLike):
        out["download_logs"] = os.fspath(out["download_logs"])
    return out


class WandbSweepConfig(ContextEntries):
    """What :func:`wandb_sweep_config` returns: ``custom_context`` entries, a reusable ``with``
    block, the settings as attributes (``kwargs``: the other keys)."""

    _prefix: ClassVar[str] = PREFIX
    _fields: ClassVar[tuple[str, ...]] = (*CONFIG, *SETTINGS)

    @classmethod
    def _normalize(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _normalize(values)

    def to_sweep_config(self) -> dict[str, Any]:
        """The sweep configuration dict for ``wandb.sweep`` (without the settings around it)."""
        return split_settings(self.decoded())[0]


def get_wandb_sweep_context() -> WandbSweepConfig | None:
    """The ``wandb_sweep_config`` settings the running code sees, or ``None`` if there are none."""
    return WandbSweepConfig.from_dict(current_custom_context()) or None


def read_sweep_settings(context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What ``wandb_sweep_config`` stored in ``context`` (default: the current context)."""
    values = decode_entries(PREFIX, current_custom_context() if context is None else context)
    values.pop(SWEEP_KEY[len(PREFIX) :], None)
    return values


def split_settings(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the W&B sweep configuration dict, the settings around it)."""
    config = {k: v for k, v in values.items() if k not in SETTINGS}
    return config, {k: v for k, v in values.items() if k in SETTINGS}


def read_sweep(context: Mapping[str, str] | None = None) -> SweepRef | None:
    """The sweep an enclosing ``@wandb_sweep`` task published, if any."""
    text = (current_custom_context() if context is None else context).get(SWEEP_KEY)
    value = None if text is None else decode_value(text, key=SWEEP_KEY)
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return None
    where = {k: value.get(k) for k in ("project", "entity", "host")}
    return SweepRef(value["id"], **where, local=bool(value.get("local")))


def sweep_entries(ref: SweepRef) -> dict[str, str]:
    """Entries that publish ``ref`` to child tasks."""
    return {SWEEP_KEY: encode_value(dataclasses.asdict(ref), key=SWEEP_KEY)}


def is_offline(mode: str | None = None) -> bool:
    """Whether a run with ``mode`` (default: the context's) would not reach a W&B server."""
    if mode is None:
        try:
            mode = read_wandb_config().get("mode")
        except ValueError:
            mode = None
    return effective_mode(mode) in ("offline", "disabled")


def current_sweep() -> SweepRef | None:
    """The sweep of the enclosing ``@wandb_sweep`` call, else the one published to this task, else
    (in a ``wandb.agent`` trial thread) the agent's."""
    ref = current.get()
    if ref is None:
        try:
            ref = read_sweep()
        except ValueError:
            ref = None
    if ref is None and os.environ.get("WANDB_SWEEP_ID"):
        return SweepRef(os.environ["WANDB_SWEEP_ID"])
    return ref


def get_wandb_sweep_id() -> str | None:
    """The id of the current sweep (inside a ``@wandb_sweep`` task or its children), or ``None``."""
    ref = current_sweep()
    return None if ref is None else ref.id
