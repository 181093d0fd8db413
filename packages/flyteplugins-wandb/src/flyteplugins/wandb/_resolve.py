"""The resolver: every fact about a call's run, decided once and purely (no environment, files
or clocks) from the settings, parent, topology, Flyte identity and client defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from flyteplugins.wandb_core import (
    DEFAULT_RANK_SCOPE,
    DEFAULT_RUN_MODE,
    RunPlan,
    Topology,
    make_base,
    plan,
)

from . import _settings
from ._client import ClientDefaults, Server, page_url

CallKind = Literal["task", "function", "trial"]
"""``task``: a Flyte task's own function; ``function``: a decorated function (inside a task, or
outside Flyte); ``trial``: a function run by a W&B sweep agent, which assigns the run."""

# Never passed to wandb.init as keywords (``settings`` is merged into the run's wandb.Settings).
PLUGIN_ONLY: Final = _settings.PLUGIN_ONLY | {"settings"}
# What a run is called and configured with: set by the process that owns the run only.
RUN_IDENTITY: Final = ("name", "tags", "notes", "group", "job_type", "config")


class Identity(NamedTuple):
    """The Flyte action a call runs in."""

    run_name: str
    action_name: str
    project: str | None = None
    domain: str | None = None
    attempt: int = 0

    @property
    def base(self) -> str:
        return make_base(self.run_name or "run", self.action_name)

    def as_config(self) -> dict[str, Any]:
        return self._asdict()


@dataclass(frozen=True)
class Parent:
    """A run this call may join: published by an enclosing task, or the enclosing call's run
    (``in_process``: its run object is live in this process and is reused, not joined)."""

    id: str
    host: str | None = None
    entity: str | None = None
    project: str | None = None
    in_process: bool = False

    @classmethod
    def from_published(cls, value: Mapping[str, Any] | None, *, in_process: bool) -> Parent | None:
        if value is None:
            return None
        return cls(
            value["id"], value.get("host"), value.get("entity"), value.get("project"), in_process
        )


class Trial(NamedTuple):
    """What a W&B sweep agent assigned to the trial (its ``WANDB_*`` variables)."""

    sweep_id: str
    run_id: str | None = None
    param_path: str | None = None


@dataclass(frozen=True)
class ResolvedRun:
    """Everything about one call's run (``run_id`` ``None``: the client picks one; ``settings``:
    the ``wandb.Settings`` fields the plugin sets; ``url``: ``None`` while no entity is known)."""

    plan: RunPlan
    server: Server
    entity: str | None
    project: str | None
    run_id: str | None
    resume: str | None
    group: str | None
    joins_parent: bool
    init_kwargs: Mapping[str, Any]
    settings: Mapping[str, Any]
    url: str | None


def merge_settings(context: Mapping[str, Any], decorator: Mapping[str, Any]) -> dict[str, Any]:
    """Decorator settings over ``wandb_config`` context settings; ``config`` dicts are merged."""
    out = dict(context)
    for key, value in decorator.items():
        if key == "config" and isinstance(out.get(key), Mapping) and value is not None:
            value = {**out[key], **value}
        if value is not None:
            out[key] = value
    return out


def own_settings(obj: Any) -> dict[str, Any]:
    """The fields a user set on their own ``settings=`` (a dict or a ``wandb.Settings``)."""
    if isinstance(obj, Mapping):
        return {k: v for k, v in obj.items() if v is not None}
    names = getattr(obj, "model_fields_set", ())
    return {n: getattr(obj, n) for n in names if getattr(obj, n, None) is not None}


def where(
    settings: Mapping[str, Any], defaults: ClientDefaults, joined: Parent | None = None
) -> tuple[Server, str | None, str | None]:
    """Server, entity and project of a run: the ``joined`` parent's, else the settings' (``host=``,
    then the own ``settings=``), else the client's defaults."""
    own, host = own_settings(settings.get("settings")), settings.get("host")
    server = defaults.server(
        host or own.get("base_url"), source="host=" if host else "settings.base_url"
    )
    entity = settings.get("entity") or own.get("entity") or defaults.entity
    project = settings.get("project") or own.get("project") or defaults.project
    if joined is None:
        return server, entity, project
    if joined.host:
        server = defaults.server(joined.host, source="the parent task's run")
    return server, joined.entity or entity, joined.project or project


def choose_parent(
    kind: CallKind, enclosing: Parent | None, published: Parent | None
) -> Parent | None:
    """The run a call may join: none for a trial, the enclosing call's run for a function inside
    a decorated call, else what an enclosing task published."""
    if kind == "trial":
        return None
    return enclosing if kind == "function" and enclosing is not None else published


def resolve(
    settings: Mapping[str, Any],
    *,
    kind: CallKind,
    defaults: ClientDefaults,
    identity: Identity | None = None,
    launcher_base: str | None = None,
    topology: Topology | None = None,
    parent: Parent | None = None,
    trial: Trial | None = None,
    label: str | None = None,
) -> ResolvedRun:
    """Resolve one call's run. ``launcher_base``: the base id when no Flyte action names the
    call (under ``torchrun``); ``label`` names a single process joining another's run."""
    base = identity.base if identity else launcher_base or make_base("local", label or "function")
    user_id = None if kind == "trial" else settings.get("id")
    parent_id = parent.id if parent is not None else None
    p = plan(
        settings.get("run_mode", DEFAULT_RUN_MODE),
        settings.get("rank_scope", DEFAULT_RANK_SCOPE),
        topology,
        base,
        parent_id=parent_id,
        user_id=user_id,
        parent_in_process=parent is not None and parent.in_process,
        label=label,
    )
    joins = p.run_id is not None and p.run_id == parent_id
    server, entity, project = where(settings, defaults, parent if joins else None)

    kwargs = {k: v for k, v in settings.items() if k not in PLUGIN_ONLY and k != "id"}
    if settings.get("sync") == "after":
        kwargs["mode"] = "offline"  # uploaded later by the sync task, whatever the network
    kwargs.update(project=project, entity=entity)
    client: dict[str, Any] = {"base_url": server.api_url}
    run_id, resume = p.run_id, None
    # No Flyte action names the run (a plain function, a function starting its own run in a
    # task, a task called as a function outside Flyte): a fresh id per call rather than one run
    # resumed by every call. Distributed ranks keep the planned ids.
    fresh = user_id is None and not joins and topology is None
    fresh = fresh and not (kind == "task" and identity is not None)
    if p.initializes:  # silent ranks and calls reusing a live run start nothing
        if kind == "trial" and trial is not None:
            # The agent's assignment, passed explicitly: the client's process-wide settings may
            # predate the trial (an enclosing task's run started them).
            kwargs.pop("resume", None)
            run_id = trial.run_id
            client.update(sweep_id=trial.sweep_id, sweep_param_path=trial.param_path)
        elif p.joins_existing:  # writes rows into a run another process owns
            kwargs.pop("resume", None)
            if joins:  # a child joining its parent's run writes rows, not the run's identity
                kwargs = {k: v for k, v in kwargs.items() if k not in RUN_IDENTITY}
        elif fresh:
            run_id = None
        else:
            resume = kwargs["resume"] = kwargs.get("resume") or "allow"
    kwargs["id"] = run_id
    kwargs["group"] = p.group or kwargs.get("group")
    if identity is not None and not p.joins_existing and kind != "trial":
        config, key = dict(kwargs.get("config") or {}), "flyte"
        while key in config:  # the Flyte identity never replaces a user's key
            key = "_" + key
        kwargs["config"] = {**config, key: identity.as_config()}
    if p.shared:
        client.update(
            x_primary=p.primary, x_label=p.label or None, x_update_finish_state=p.finishes
        )
    return ResolvedRun(
        plan=p,
        server=server,
        entity=entity,
        project=project,
        run_id=run_id,
        resume=resume,
        group=kwargs.get("group"),
        joins_parent=joins,
        init_kwargs={k: v for k, v in kwargs.items() if v is not None},
        settings={k: v for k, v in client.items() if v is not None},
        url=page_url(server.app_url, entity, project, "runs", run_id) if run_id else None,
    )
