"""The pages a task's W&B links point at, and a sweep's page: core's plan says which runs and
groups a task will have, the resolver where they live, as for the task's own process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from flyteplugins.wandb_core import DEFAULT_RANK_SCOPE, DEFAULT_RUN_MODE, link_targets, make_base

from ._client import DEFAULT_PROJECT, ClientDefaults, Server, page_url
from ._resolve import Parent, where


class LinkPage(NamedTuple):
    """One page a task's link points at (``url`` ``None``: no entity is known to name it)."""

    id: str
    server: Server
    entity: str | None
    project: str | None
    url: str | None


def link_pages(
    settings: Mapping[str, Any],
    *,
    defaults: ClientDefaults,
    run_name: str,
    action_name: str,
    parent: Parent | None = None,
    nnodes: int | str | None = None,
    nproc_per_node: int = 1,
    worker: int | None = None,
    cached: bool = False,
) -> list[LinkPage]:
    """The pages of a task's runs (or groups), of one ``worker``'s when given. ``cached`` (Flyte
    may serve the task from its cache, so its own run may never exist): the project's page
    instead, except a parent's run the task joins."""
    targets = link_targets(
        settings.get("run_mode", DEFAULT_RUN_MODE),
        settings.get("rank_scope", DEFAULT_RANK_SCOPE),
        make_base(run_name, action_name),
        nnodes=nnodes,
        nproc_per_node=nproc_per_node,
        parent_id=parent.id if parent is not None else None,
        user_id=settings.get("id"),
    )
    pages: list[LinkPage] = []
    for t in targets:
        if worker is not None and t.worker not in (None, worker):
            continue
        joins = t.kind == "run" and parent is not None and t.id == parent.id
        server, entity, project = where(settings, defaults, parent if joins else None)
        kind, page_id = (t.kind + "s", t.id) if joins or not cached else ("", "")
        url = page_url(server.app_url, entity, project, kind, page_id)
        page = LinkPage(page_id or project or DEFAULT_PROJECT, server, entity, project, url)
        if page not in pages:  # one project page for every cached target
            pages.append(page)
    return pages


def sweep_link(
    settings: Mapping[str, Any], *, defaults: ClientDefaults, sweep_id: str | None
) -> str:
    """The sweep's page when its id is known, else the project's sweeps page, else the app."""
    server, entity, project = where(settings, defaults)
    return page_url(server.app_url, entity, project, "sweeps", sweep_id or "") or server.app_url
