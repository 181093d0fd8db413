"""The plugin's declared surface for the distributions built on it (``flyteplugins-wandb-sweeps``).

A contract: within one minor series (3.1.x) no name here goes away or changes signature or
behaviour; a new minor may add names and changes one only with a CHANGELOG entry, so a user of
this module pins one minor series. Every other ``_`` module of the plugin is private (the
project's ruff and import-linter rules forbid sweeps to import them). Importing this module does
not import ``wandb``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ._backend import effective_mode
from ._client_env import client_server
from ._config import ContextEntries
from ._context import (
    current_custom_context,
    decode_entries,
    decode_value,
    encode_entries,
    encode_value,
    override_custom_context,
    read_wandb_config,
)
from ._link import WANDB_ICON as _ICON
from ._records import RecordFormatError, RunRecord, find_run_files, read_run
from ._state import live_lock as _live_lock
from ._state import live_runs as _live_runs

WANDB_ICON: Final[str] = _ICON  # the icon of every W&B link in the Flyte UI


def sweep_page_url(settings: Mapping[str, Any], sweep_id: str | None) -> str:
    """The page of sweep ``sweep_id`` for ``settings`` (``host``, ``entity``, ``project``); the
    project's sweeps page before the id exists; the app's start page with no entity known."""
    from . import _client, _pages

    return _pages.sweep_link(settings, defaults=_client.read_defaults(), sweep_id=sweep_id)


def action_id_base(run_name: str, action_name: str) -> str:
    """The base of the W&B ids of a Flyte action (``{run_name}-{action_name}``, made safe and
    stable; Flyte templates such as ``{{.actionName}}`` kept): a task's own run id."""
    from . import _resolve

    return _resolve.Identity(run_name=run_name, action_name=action_name).base


def keep_links_on_override(
    task: Any, ours: Sequence[Any], make_links: Callable[[Any], Sequence[Any]]
) -> None:
    """Keep the links a decorator added (``ours``) on every ``task.override(...)``: the new task
    gets the links the caller kept or passed, then ``make_links(new_task)``, and the hook."""
    from ._decorator import keep_links_on_override as keep

    keep(task, ours, make_links)


def server_url(settings: Mapping[str, Any]) -> str:
    """The API URL a run with ``settings`` talks to (``host=``, app or API, else the client's
    own choice)."""
    from . import _client, _resolve

    return _resolve.where(settings, _client.read_defaults())[0].api_url


def flyte_identity() -> dict[str, Any] | None:
    """The caller's Flyte action as runs record it under ``flyte`` in their config; ``None``
    outside a Flyte task."""
    from . import _flyte

    tctx = _flyte.task_context()
    return _flyte.identity(tctx).as_config() if tctx else None


def live_run_ids() -> tuple[str, ...]:
    """The ids of the runs ``@wandb_init`` started in this process and has not finished yet."""
    with _live_lock:
        return tuple(sorted(str(run_id) for run_id in _live_runs))


__all__ = [
    "WANDB_ICON",
    "ContextEntries",
    "RecordFormatError",
    "RunRecord",
    "action_id_base",
    "client_server",
    "current_custom_context",
    "decode_entries",
    "decode_value",
    "effective_mode",
    "encode_entries",
    "encode_value",
    "find_run_files",
    "flyte_identity",
    "keep_links_on_override",
    "live_run_ids",
    "override_custom_context",
    "read_run",
    "read_wandb_config",
    "server_url",
    "sweep_page_url",
]
