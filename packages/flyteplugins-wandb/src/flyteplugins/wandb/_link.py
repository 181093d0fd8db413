"""The ``Wandb`` link shown on a task in the Flyte UI, rendered at submit time (with the
submitter's ``custom_context`` and client defaults) from the resolver's decision (``_pages``,
imported then), so it names the run or group that will exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._settings import check

WANDB_ICON = "https://wandb.ai/logo.svg"


@dataclass
class Wandb:
    """Link to the W&B run of a task (one link per worker in ``worker`` scope).

    The first seven fields in the 2.x order; ``host`` unset is the client's server. Settings
    here win over the submitter's ``wandb_config``. ``nnodes``/``nproc_per_node`` describe a
    distributed task (an Elastic range such as ``"1:4"`` renders the maximum); ``worker`` picks
    one worker's page; ``cached``: the task may be served from Flyte's cache, so its own run may
    never exist and the link points at the project (or the parent's run it joins).
    """

    host: str | None = None
    project: str | None = None
    entity: str | None = None
    run_mode: str | None = None
    rank_scope: str | None = None
    id: str | None = None
    name: str = "Weights & Biases"
    icon_uri: str = WANDB_ICON
    nnodes: int | str | None = None
    nproc_per_node: int = 1
    worker: int | None = None
    cached: bool = False

    def __post_init__(self) -> None:
        check("run_mode", self.run_mode)
        check("rank_scope", self.rank_scope)

    def urls(
        self, run_name: str, action_name: str, context: dict[str, str] | None = None
    ) -> list[str]:
        """The page of every run (or group) of this task, as the resolver decides them (the W&B
        app's start page where no entity is known)."""
        from . import _client, _pages, _resolve
        from ._context import read_parent, read_wandb_config

        ctx = context or {}
        fields = ("project", "entity", "host", "id", "run_mode", "rank_scope")
        own = {f: getattr(self, f) for f in fields}
        pages = _pages.link_pages(
            _resolve.merge_settings(read_wandb_config(ctx), own),
            defaults=_client.read_defaults(),
            run_name=run_name,
            action_name=action_name,
            parent=_resolve.Parent.from_published(read_parent(ctx), in_process=False),
            nnodes=self.nnodes,
            nproc_per_node=self.nproc_per_node,
            worker=self.worker,
            cached=self.cached,
        )
        return [page.url or page.server.app_url for page in pages]

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
