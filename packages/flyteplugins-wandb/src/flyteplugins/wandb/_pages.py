"""The pages a task's W&B links point at, and a sweep's page: core's plan says which runs and
groups a task will have, the resolver where they live, as for the task's own process."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flyteplugins.wandb_core import (
    DEFAULT_RANK_SCOPE,
    DEFAULT_RUN_MODE,
    link_targets,
    make_base,
    parse_rank_scope,
    parse_run_mode,
)

from ._client import DEFAULT_PROJECT, ClientDefaults, Server, sweep_url, sweeps_page_url
from ._resolve import Parent, page_url, where


@dataclass(frozen=True)
class LinkPage:
    """One page a task's link points at."""

    kind: str
    id: str
    worker: int | None
    server: Server
    entity: str | None
    project: str | None

    @property
    def url(self) -> str:
        """The page, or the web app's start page when the entity is unknown."""
        return page_url(self.server, self.entity, self.project, self.kind, self.id) or (
            self.server.app_url
        )

    @property
    def complete(self) -> bool:
        return bool(self.entity)


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
    """The pages of a task's runs (or groups). ``cached`` (Flyte may serve the task from its
    cache, so its own run may never exist): the project's page instead, except a parent's run
    the task joins."""
    mode = parse_run_mode(settings.get("run_mode", DEFAULT_RUN_MODE))
    scope = parse_rank_scope(settings.get("rank_scope", DEFAULT_RANK_SCOPE))
    targets = link_targets(
        mode,
        scope,
        make_base(run_name, action_name),
        nnodes=nnodes,
        nproc_per_node=nproc_per_node,
        parent_id=parent.id if parent is not None else None,
        user_id=settings.get("id"),
    )
    if worker is not None:
        targets = [t for t in targets if t.worker in (None, worker)]
    pages = []
    for t in targets:
        joins = t.kind == "run" and parent is not None and t.id == parent.id
        server, entity, project = where(settings, defaults, parent, joins)
        if cached and not joins:
            page = LinkPage("project", project or DEFAULT_PROJECT, None, server, entity, project)
            if page not in pages:
                pages.append(page)
            continue
        pages.append(LinkPage(t.kind, t.id, t.worker, server, entity, project))
    return pages


def sweep_link(
    settings: Mapping[str, Any], *, defaults: ClientDefaults, sweep_id: str | None
) -> str:
    """The sweep's page when its id is known, else the project's sweeps page, else the app."""
    server, entity, project = where(settings, defaults, None, False)
    if not entity:
        return server.app_url
    proj = project or DEFAULT_PROJECT
    if sweep_id:
        return sweep_url(server.app_url, entity, proj, sweep_id)
    return sweeps_page_url(server.app_url, entity, proj)
