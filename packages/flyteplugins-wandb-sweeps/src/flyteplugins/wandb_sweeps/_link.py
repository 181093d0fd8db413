"""The ``WandbSweep`` link shown on a task in the Flyte UI.

Links are rendered at submit time, before the task runs. The link names the sweep itself whenever
its id is known then: an id given here, the sweep an enclosing ``@wandb_sweep`` task published in
the submitter's ``custom_context``, or the local sweep a ``@wandb_sweep`` task will create (its id
is derived from the Flyte run and action). Otherwise (a sweep the W&B server will create, or a
link on a task that creates no sweep) it points at the project's sweeps page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flyteplugins.wandb.ext import WANDB_ICON, read_wandb_config, sweep_page_url

from ._context import is_local, read_sweep, read_sweep_settings
from ._controller import local_sweep_id


@dataclass
class WandbSweep:
    """Link to a W&B sweep (or, before the sweep exists, to the project's sweeps page).

    Settings given here win over the submitter's ``wandb_sweep_config``/``wandb_config`` context.
    The fields come in the order of the 2.x link (``host, project, entity, id, name``); ``id`` and
    ``sweep_id`` name the same sweep (either may be given; both only when equal).
    ``local_controller`` is ``@wandb_sweep``'s: on a ``@wandb_sweep`` task with it (or when W&B is
    offline) the task creates a local sweep whose id the link derives from the run and action.
    """

    host: str | None = None
    project: str | None = None
    entity: str | None = None
    id: str | None = None
    name: str = "Weights & Biases Sweep"
    icon_uri: str = WANDB_ICON
    sweep_id: str | None = None
    local_controller: bool | None = None
    _creates: bool = field(default=False, init=False, repr=False, compare=False)
    """Set by ``@wandb_sweep``: the task this link is on creates the sweep."""

    def __post_init__(self) -> None:
        if self.id is not None and self.sweep_id is not None and self.id != self.sweep_id:
            raise ValueError(
                f"WandbSweep(id={self.id!r}, sweep_id={self.sweep_id!r}): both name the sweep; "
                "give one of them"
            )
        self.sweep_id = self.id = self.sweep_id if self.sweep_id is not None else self.id

    def url(
        self,
        context: dict[str, str] | None = None,
        run_name: str | None = None,
        action_name: str | None = None,
    ) -> str:
        """The link's URL for a submission with ``context``; ``run_name``/``action_name`` (the
        Flyte run and action the task runs as) name the local sweep a ``@wandb_sweep`` task
        would create."""
        ctx = context or {}
        run_cfg = read_wandb_config(ctx)
        sweep_cfg = read_sweep_settings(ctx)
        published = read_sweep(ctx)
        sweep_id = self.sweep_id
        source: dict[str, Any] = {}
        if sweep_id is None and published is not None:
            source, sweep_id = published.as_dict(), published.id
        elif sweep_id is None and self._creates and run_name and action_name:
            local = self.local_controller
            if local is None:
                local = sweep_cfg.get("local_controller")
            if is_local(local, run_cfg.get("mode")):
                sweep_id = local_sweep_id(run_name, action_name)
        settings = {
            "host": self.host or source.get("host") or run_cfg.get("host"),
            "entity": self.entity
            or source.get("entity")
            or sweep_cfg.get("entity")
            or run_cfg.get("entity"),
            "project": self.project
            or source.get("project")
            or sweep_cfg.get("project")
            or run_cfg.get("project"),
        }
        return sweep_page_url({k: v for k, v in settings.items() if v}, sweep_id)

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
        return self.url(context, run_name, action_name)
