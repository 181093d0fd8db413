"""The plugin's declared surface for the distributions built on it (``flyteplugins-wandb-sweeps``).

Everything else in ``flyteplugins.wandb`` whose name starts with ``_`` is private and may change
in any release. What this module exports is a contract: within one minor series of
``flyteplugins-wandb`` (3.1.x) no name here goes away and no signature or behaviour changes; a
new minor version may add names, and changes one only with a CHANGELOG entry. A distribution that
uses this module therefore pins ``flyteplugins-wandb`` to one minor series (the sweeps
distribution: ``>=3.1,<3.2``). The project's ruff configuration forbids every other import of
the plugin's private modules from the sweeps distribution.

The surface, by purpose:

``custom_context`` encoding (each setting under ``<prefix><name>`` as the JSON text of its value,
so it decodes exactly; see :func:`flyteplugins.wandb.wandb_config`)
    :func:`encode_value`, :func:`decode_value`, :func:`encode_entries`, :func:`decode_entries`,
    :func:`current_custom_context`, :func:`override_custom_context`, :class:`ContextEntries`,
    :func:`read_wandb_config`.

The client's mode
    :func:`effective_mode`: the mode a run started now would use.

What the client recorded offline (the ``run-<id>.wandb`` reader)
    :func:`read_run`, :func:`find_run_files`, :class:`RunRecord`, :class:`RecordFormatError`.

Links and ids
    :data:`WANDB_ICON`: the icon of every W&B link in the Flyte UI.
    :func:`sweep_page_url`: the page of a sweep, decided by the plugin's resolver (the server,
    web app and entity the installed client would use).
    :func:`action_id_base`: the base every W&B id derived from a Flyte action starts with.
    :func:`keep_links_on_override`: keep a decorator's links on ``task.override(...)``.

The server
    :func:`server_url`: the API URL a run with these settings uses, decided by the resolver.
    :func:`client_server`: point the client's ``wandb.sweep`` / ``wandb.agent`` /
    ``wandb.Api`` (which read their server only from ``WANDB_BASE_URL``) at a server for the
    length of a block, restoring the environment after it.

Runs of this process
    :func:`live_run_ids`: the ids of the ``@wandb_init`` runs this process started and has not
    finished yet.

Importing this module does not import ``wandb``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ._backend import effective_mode
from ._client_env import client_server
from ._context import (
    ContextEntries,
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

WANDB_ICON: Final[str] = _ICON
"""URL of the W&B logo that every W&B link of the Flyte UI shows."""


def sweep_page_url(settings: Mapping[str, Any], sweep_id: str | None) -> str:
    """The page of the sweep ``sweep_id`` for ``settings`` (``host``, ``entity``, ``project``).

    With no ``sweep_id`` (the server has not assigned it yet) the project's sweeps page; with no
    entity known anywhere (settings, ``WANDB_ENTITY``, the client's settings files) the W&B app's
    start page, never a URL without an entity.
    """
    from . import _client, _pages

    return _pages.sweep_link(settings, defaults=_client.read_defaults(), sweep_id=sweep_id)


def action_id_base(run_name: str, action_name: str) -> str:
    """The base of the W&B ids derived from the Flyte action ``action_name`` of ``run_name``.

    ``{run_name}-{action_name}``, with the characters W&B rejects replaced and shortened with a
    stable hash to leave room for suffixes; Flyte templates such as ``{{.actionName}}`` are kept
    as they are, so a link rendered before the names exist names the same id once Flyte fills
    them in. It is the id of a task's own run, and the same inputs always give the same base
    (a retry of the action included).
    """
    from . import _resolve

    return _resolve.Identity(run_name=run_name, action_name=action_name).base


def keep_links_on_override(
    task: Any, ours: Sequence[Any], make_links: Callable[[Any], Sequence[Any]]
) -> None:
    """Keep the links a decorator added to ``task`` on every ``task.override(...)``.

    Flyte's ``override`` returns a new task; ``override(links=...)`` replaces its links, which
    would drop ``ours`` (the link objects the decorator added). With this hook the new task has
    the links the caller kept or passed, followed by ``make_links(new_task)``, and the hook is
    installed on the new task too. The plugin's own ``Wandb`` links are kept the same way.
    """
    from ._elastic import keep_links_on_override as keep

    keep(task, ours, make_links)


def server_url(settings: Mapping[str, Any]) -> str:
    """The API URL of the W&B server a run with ``settings`` (``host``, ``settings``) talks to.

    ``host=`` may name the web app or the API; without it, the client's own choice
    (``WANDB_BASE_URL``, its settings files, its default server).
    """
    from . import _client, _resolve

    return _resolve.server_for(settings, _client.read_defaults()).api_url


def flyte_identity() -> dict[str, Any] | None:
    """The Flyte action the caller runs in, as the plugin records it under ``flyte`` in a run's
    config (``run_name``, ``action_name``, ``project``, ``domain``, ``attempt``); ``None``
    outside a Flyte task. For code that starts runs where no Flyte context exists (a worker
    process of parallel sweep agents)."""
    from . import _flyte

    tctx = _flyte.task_context()
    return _flyte.identity(tctx).as_config() if tctx else None


def live_run_ids() -> tuple[str, ...]:
    """The ids of the runs ``@wandb_init`` started in this process and has not finished, sorted.

    Empty when no decorated call of this process has a run open. A run appears when its call
    started it and disappears when the call finishes it (also on failure or SIGTERM). Runs the
    user started with a bare ``wandb.init()`` are not counted.
    """
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
