"""The ``Wandb`` link shown on a task in the Flyte UI.

Links are rendered when the task is submitted, with the submitter's ``custom_context``. The pages
they point at come from core's :func:`~flyteplugins.wandb_core.link_targets`, the same plan the
task process executes, so the link always names the run (or group) that will exist.
"""

from __future__ import annotations

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

from ._context import read_parent, read_wandb_config

WANDB_ICON = "https://wandb.ai/logo.svg"


def client_base_url(host: str) -> str:
    """The wandb client's ``base_url`` for a ``host`` setting.

    ``host`` may name the web app or the API, with or without a scheme: W&B's cloud app
    ``wandb.ai`` is served by ``api.wandb.ai``; a self-hosted server answers both on one host.
    """
    text = host.strip().rstrip("/")
    if "://" not in text:
        text = "https://" + text
    scheme, _, rest = text.partition("://")
    if rest == "wandb.ai":
        rest = "api.wandb.ai"
    return f"{scheme}://{rest}"


@dataclass
class Wandb:
    """Link to the W&B run of a task (one link per worker in ``worker`` scope).

    Settings given here (normally copied from ``@wandb_init``) win over the submitter's
    ``wandb_config`` context. ``nnodes``/``nproc_per_node`` describe a distributed task (an
    Elastic ``nnodes`` range such as ``"1:4"`` renders links for the maximum); ``worker`` picks
    one worker's page when several exist.
    """

    name: str = "Weights & Biases"
    icon_uri: str = WANDB_ICON
    project: str | None = None
    entity: str | None = None
    host: str | None = None
    id: str | None = None
    run_mode: str | None = None
    rank_scope: str | None = None
    nnodes: int | str | None = None
    nproc_per_node: int = 1
    worker: int | None = None

    def __post_init__(self) -> None:
        if self.run_mode is not None:
            parse_run_mode(self.run_mode)
        if self.rank_scope is not None:
            parse_rank_scope(self.rank_scope)

    def urls(
        self, run_name: str, action_name: str, context: dict[str, str] | None = None
    ) -> list[str]:
        """Every page this task's W&B runs (or groups) will have."""
        ctx = read_wandb_config(context or {})
        parent = read_parent(context or {})
        mode = self.run_mode or ctx.get("run_mode") or DEFAULT_RUN_MODE
        scope = self.rank_scope or ctx.get("rank_scope") or DEFAULT_RANK_SCOPE
        user_id = self.id or ctx.get("id")
        parent_id = parent["id"] if parent else None
        joins = parent is not None and user_id is None and mode != "new" and self.nnodes is None
        source: dict[str, Any] = parent if joins and parent is not None else {}
        host = source.get("host") or self.host or ctx.get("host")
        entity = source.get("entity") or self.entity or ctx.get("entity")
        project = source.get("project") or self.project or ctx.get("project") or "uncategorized"
        targets = link_targets(
            mode,
            scope,
            make_base(run_name, action_name),
            nnodes=self.nnodes,
            nproc_per_node=self.nproc_per_node,
            parent_id=parent_id,
            user_id=user_id,
        )
        if self.worker is not None:
            targets = [t for t in targets if t.worker in (None, self.worker)]
        return [t.url(host, entity, project) for t in targets]

    def get_link(
        self,
        run_name: str,
        project: str,
        domain: str,
        context: dict[str, str],
        parent_action_name: str,
        action_name: str,
        pod_name: str,
        **kwargs: Any,
    ) -> str:
        urls = self.urls(run_name, action_name, context)
        return urls[0] if urls else ""
