"""The ``Wandb`` link shown on a task in the Flyte UI.

Rendered at submit time (with the submitter's ``custom_context`` and client defaults) from the
resolver's decision (``_pages``, imported then), so it names the run or group that will exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flyteplugins.wandb_core import parse_rank_scope, parse_run_mode

if TYPE_CHECKING:
    from ._pages import LinkPage

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
        if self.run_mode is not None:
            parse_run_mode(self.run_mode)
        if self.rank_scope is not None:
            parse_rank_scope(self.rank_scope)

    def _settings(self) -> dict[str, Any]:
        fields = ("project", "entity", "host", "id", "run_mode", "rank_scope")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}

    def pages(
        self, run_name: str, action_name: str, context: dict[str, str] | None = None
    ) -> list[LinkPage]:
        """Every page this task's W&B runs (or groups) will have, as the resolver decides them."""
        from . import _client, _pages, _resolve
        from ._context import read_parent, read_wandb_config

        ctx = context or {}
        settings = _resolve.merge_settings(read_wandb_config(ctx), self._settings())
        parent = _resolve.Parent.from_published(read_parent(ctx), in_process=False)
        return _pages.link_pages(
            settings,
            defaults=_client.read_defaults(),
            run_name=run_name,
            action_name=action_name,
            parent=parent,
            nnodes=self.nnodes,
            nproc_per_node=self.nproc_per_node,
            worker=self.worker,
            cached=self.cached,
        )

    def urls(
        self, run_name: str, action_name: str, context: dict[str, str] | None = None
    ) -> list[str]:
        """The URLs of :meth:`pages` (the app's start page where an entity is unknown)."""
        return [page.url for page in self.pages(run_name, action_name, context)]

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
