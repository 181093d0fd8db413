"""Which distributed shape a task will run with, read from its template at decoration time.

Two launchers run a Flyte task in several processes:

* ``flyteplugins-pytorch``'s ``Elastic`` plugin config (``TaskEnvironment(plugin_config=
  Elastic(nnodes=N, nproc_per_node=M))``): ``nnodes`` may be an elastic range such as ``"1:4"``.
* Flyte's own ``flyte.clustered.ClusteredTaskEnvironment`` with the ``TorchRun`` (or ``JaxRun``)
  runtime: ``replicas`` nodes of ``nproc_per_node`` processes.

The shape decides the links (one per worker in worker scope, group pages in ``new`` mode);
inside the workers the topology is read from the environment, never from here. Detection uses
the real config classes (``isinstance``), and only when their module is already imported: a task
whose config is an ``Elastic`` instance has necessarily imported ``flyteplugins.pytorch``, so a
plain task never pays for importing torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flyteplugins.wandb_core import parse_nnodes


@dataclass(frozen=True)
class DistributedShape:
    """``nnodes`` as configured (an int or an elastic range ``"min:max"``), processes per node."""

    nnodes: int | str
    nproc_per_node: int
    launcher: str

    @property
    def max_nodes(self) -> int:
        """The node count links are rendered for: an elastic range's maximum."""
        return parse_nnodes(self.nnodes)

    @property
    def max_world_size(self) -> int:
        return self.max_nodes * self.nproc_per_node


def shape_of_config(plugin_config: object) -> DistributedShape | None:
    """The shape a task plugin config launches, or ``None`` for a single-process config."""
    if plugin_config is None:
        return None
    pytorch = sys.modules.get("flyteplugins.pytorch.task")
    elastic_cls = getattr(pytorch, "Elastic", None) if pytorch is not None else None
    if elastic_cls is not None and isinstance(plugin_config, elastic_cls):
        nnodes = plugin_config.nnodes
        nproc = plugin_config.nproc_per_node
        parse_nnodes(nnodes)  # a malformed value fails here, naming it, not at submit time
        if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
            raise ValueError(f"invalid Elastic nproc_per_node {nproc!r}: expected an int >= 1")
        return DistributedShape(nnodes=nnodes, nproc_per_node=nproc, launcher="elastic")
    clustered = sys.modules.get("flyte.clustered._environment")
    settings_cls = getattr(clustered, "ClusteredSettings", None) if clustered else None
    settings = getattr(plugin_config, "settings", None)
    if settings_cls is not None and isinstance(settings, settings_cls):
        return DistributedShape(
            nnodes=settings.replicas,
            nproc_per_node=settings.nproc_per_node,
            launcher="clustered",
        )
    return None


def shape_of_task(task: object) -> DistributedShape | None:
    """The shape of a Flyte task template (its ``plugin_config``); ``None`` for plain tasks."""
    return shape_of_config(getattr(task, "plugin_config", None))


def keep_links_on_override(
    task: Any, ours: Sequence[Any], make_links: Callable[[Any], Sequence[Any]]
) -> None:
    """Make ``task.override(...)`` return a task whose W&B links are recomputed for it.

    Flyte's ``override`` builds a new template with ``dataclasses.replace``: the wrapped function
    travels along, but ``override(links=...)`` replaces the links (ours would be lost) and
    ``override(plugin_config=Elastic(...))`` changes the shape the links were computed for. The
    hook drops ``ours`` (the link objects this plugin added), appends ``make_links(new_task)``
    after the links the caller kept or passed, and installs itself on the new task too. A hook
    another decorator installed on ``task`` before (``@wandb_sweep`` above ``@wandb_init``) runs
    first, so each keeps its own links.
    """
    cls_override = type(task).override
    previous = vars(task).get("override")  # another decorator's hook on this task
    own = {id(link) for link in ours}

    def override(*args: Any, **kwargs: Any) -> Any:
        if previous is not None:
            new = previous(*args, **kwargs)
        else:
            new = cls_override(task, *args, **kwargs)
        kept = tuple(link for link in new.links or () if id(link) not in own)
        fresh = tuple(make_links(new))
        new.links = (*kept, *fresh)
        keep_links_on_override(new, fresh, make_links)
        return new

    override.__doc__ = cls_override.__doc__
    object.__setattr__(task, "override", override)
