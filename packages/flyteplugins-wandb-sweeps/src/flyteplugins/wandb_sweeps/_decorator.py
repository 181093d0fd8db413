"""``@wandb_sweep`` and its ``WandbSweep`` link. Per call: settings (decorator >
``wandb_sweep_config`` > ``wandb_config``) -> reuse the sweep an enclosing task published, or
create one (``wandb.sweep``, else the local controller) -> publish it to the code and child tasks
-> run the task -> download the trials' logs if asked."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import flyte

from flyteplugins.wandb.ext import (
    WANDB_ICON,
    keep_links_on_override,
    override_custom_context,
    read_run,
    read_wandb_config,
    server_url,
    sweep_page_url,
)

from ._agent import client_host, local_wandb_agent
from ._context import (
    check_settings,
    is_offline,
    read_sweep,
    read_sweep_settings,
    split_settings,
    sweep_entries,
)
from ._controller import LocalSweep, create_local_sweep, local_sweep_id, parameter_paths
from ._fetch import find_offline_run_dir
from ._state import SweepRef, current
from ._validate import check_partial, validate_sweep_config
from .download import after_task, after_task_async

logger = logging.getLogger(__name__)
_MARK = "__flyteplugins_wandb_sweep__"
F = TypeVar("F", bound=Callable[..., Any])
_CONFIG_KEYS = ("method", "metric", "parameters")


@dataclass
class WandbSweep:
    """Link to a W&B sweep (before it exists: the project's sweeps page). Settings given here win
    over the submitter's context; fields in the order of the 2.x link; ``id`` and ``sweep_id`` name
    the same sweep. On a ``@wandb_sweep`` task (``_creates``), ``local_controller`` (or W&B
    offline) means a local sweep whose id the link derives from the run and action."""

    host: str | None = None
    project: str | None = None
    entity: str | None = None
    id: str | None = None
    name: str = "Weights & Biases Sweep"
    icon_uri: str = WANDB_ICON
    sweep_id: str | None = None
    local_controller: bool | None = None
    _creates: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if None not in (self.id, self.sweep_id) and self.id != self.sweep_id:
            raise ValueError(
                f"WandbSweep(id={self.id!r}, sweep_id={self.sweep_id!r}) names two sweeps: give "
                "one of them (id= and sweep_id= are the same field)"
            )
        self.sweep_id = self.id = self.sweep_id if self.sweep_id is not None else self.id

    def url(
        self,
        context: dict[str, str] | None = None,
        run_name: str | None = None,
        action_name: str | None = None,
    ) -> str:
        """The link's URL for a submission with ``context`` in the Flyte run and action given."""
        ctx = context or {}
        run_cfg = read_wandb_config(ctx)
        sweep_cfg = read_sweep_settings(ctx)
        published = read_sweep(ctx)
        sweep_id = self.sweep_id
        source: dict[str, Any] = {}
        if sweep_id is None and published is not None:
            source, sweep_id = dataclasses.asdict(published), published.id
        elif sweep_id is None and self._creates and run_name and action_name:
            local = self.local_controller
            if local is None:
                local = sweep_cfg.get("local_controller")
            if local or is_offline(run_cfg.get("mode")):  # the task creates a local sweep
                sweep_id = local_sweep_id(run_name, action_name)
        settings = {}
        for key in ("host", "entity", "project"):  # given here > the sweep's > the contexts'
            found = [getattr(self, key), source.get(key), sweep_cfg.get(key), run_cfg.get(key)]
            settings[key] = next((v for v in found if v), None)
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


@overload
def wandb_sweep(_func: F) -> F: ...
@overload
def wandb_sweep(_func: None = None, **options: Any) -> Callable[[F], F]: ...
def wandb_sweep(
    _func: Any = None,
    *,
    project: str | None = None,
    entity: str | None = None,
    download_logs: bool | None = None,
    prior_runs: list[str] | None = None,
    local_controller: bool | None = None,
    **sweep_config: Any,
) -> Any:
    """Create a W&B sweep when the task runs (put it *above* ``@env.task``). The configuration comes
    from ``wandb_sweep_config`` in the context or from keywords here (``method``, ``metric``,
    ``parameters``, ..., or the whole dict as ``sweep={...}``), which win; ``project``/``entity``
    default to ``wandb_config``'s. Offline or with ``local_controller=True`` a local controller
    runs it. Inside the task ``get_wandb_sweep_id()`` gives its id and
    ``run_agent``/``run_parallel_agents`` run trials; ``download_logs=True`` downloads their logs
    after the task."""
    whole = sweep_config.pop("sweep", None)
    if whole is not None and not isinstance(whole, Mapping):
        raise TypeError(f"sweep={whole!r}: expected the sweep configuration dict")
    where: dict[str, Any] = {"project": project, "entity": entity, "download_logs": download_logs}
    where |= {"prior_runs": prior_runs, "local_controller": local_controller}
    given = {**(whole or {}), **sweep_config, **where}
    opts = {k: v for k, v in given.items() if v is not None}
    check_settings(opts)
    check_partial(opts)
    if whole is not None:  # sweep={...} is the whole configuration: check it whole, now
        validate_sweep_config(split_settings(opts)[0])

    def apply(target: Any) -> Any:
        func = getattr(target, "func", None)
        if not isinstance(target, flyte.TaskTemplate) or func is None:
            hint = "put it above @env.task on " if callable(target) else "not "
            raise TypeError(f"@wandb_sweep decorates a Flyte task: {hint}{target!r}")
        if getattr(func, _MARK, None) is not None:
            raise ValueError(f"@wandb_sweep is applied twice to the task {target.name!r}")
        target.func = _wrap(func, opts)  # type: ignore[attr-defined]
        links = _sweep_links(target, opts)
        target.links = (*tuple(target.links or ()), *links)
        keep_links_on_override(target, links, lambda task: _sweep_links(task, opts))
        return target

    return apply(_func) if _func is not None else apply


def _sweep_links(task: Any, opts: Mapping[str, Any]) -> tuple[Any, ...]:
    """The links ``@wandb_sweep`` adds to a task (again for an overridden task)."""
    where: dict[str, Any] = {k: opts.get(k) for k in ("project", "entity", "local_controller")}
    link = WandbSweep(**where)
    link._creates = True
    return (link,)


def _wrap(func: Callable[..., Any], opts: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with _SweepCall(opts) as call:
                with call.scope:
                    result = await func(*args, **kwargs)
                if call.download is not None:
                    await after_task_async(**call.download)
                return result

        setattr(async_wrapper, _MARK, opts)
        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _SweepCall(opts) as call:
            with call.scope:
                result = func(*args, **kwargs)
            if call.download is not None:
                after_task(**call.download)
            return result

    setattr(wrapper, _MARK, opts)
    return wrapper


class _SweepCall:
    """One call of a ``@wandb_sweep`` task: ``scope`` (around the task's code) publishes the sweep
    and routes ``wandb.agent``; leaving the call forgets the local sweep it created."""

    def __init__(self, opts: Mapping[str, Any]) -> None:
        self.opts = opts
        self.download: dict[str, Any] | None = None
        self.created: LocalSweep | None = None
        self.scope = ExitStack()

    def __enter__(self) -> _SweepCall:
        try:
            with ExitStack() as stack:
                self._enter(stack)
                self.scope = stack.pop_all()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.created is not None:
            self.created.close()

    def _enter(self, stack: ExitStack) -> None:
        config, settings = split_settings({**read_sweep_settings(), **self.opts})
        wandb_cfg = read_wandb_config()
        project = settings.get("project") or wandb_cfg.get("project")
        entity = settings.get("entity") or wandb_cfg.get("entity")
        host, mode = wandb_cfg.get("host"), wandb_cfg.get("mode")
        published = read_sweep()
        if published is not None and not any(k in self.opts for k in _CONFIG_KEYS):
            ref = published
            # the task that created the sweep downloads its logs, not every child reusing it
            settings["download_logs"] = self.opts.get("download_logs")
        else:
            config = validate_sweep_config(config)
            local = bool(settings.get("local_controller")) or is_offline(mode)
            ref, self.created = _create(config, settings, project, entity, host, local)
        if ref.local or (ref.host and server_url({"host": ref.host}) != server_url({})):
            # the specification's wandb.agent(get_wandb_sweep_id(), ...) runs local trials too,
            # and reaches a server named only by the settings without an environment variable
            stack.enter_context(local_wandb_agent())
        stack.callback(current.reset, current.set(ref))
        stack.enter_context(override_custom_context(sweep_entries(ref)))
        if settings.get("download_logs"):  # True, or the folder to use
            where = {"project": ref.project, "entity": ref.entity, "host": ref.host}
            self.download = {"sweep_id": ref.id, **where, "offline": is_offline(mode)}
            self.download["download_logs"] = settings["download_logs"]


def _create(
    config: dict[str, Any],
    settings: Mapping[str, Any],
    project: str | None,
    entity: str | None,
    host: str | None,
    local: bool,
) -> tuple[SweepRef, LocalSweep | None]:
    """The new sweep's reference, and the local sweep object (``None`` on a server)."""
    prior_runs = settings.get("prior_runs")
    if not local:
        import wandb

        with client_host(host):
            sweep_id = str(
                wandb.sweep(config, entity=entity, project=project, prior_runs=prior_runs)
            )
        # the task's link could only name the project's sweeps page: say where this sweep is
        url = sweep_page_url({"host": host, "entity": entity, "project": project}, sweep_id)
        print(f"W&B sweep of this task: {url}", flush=True)
        return SweepRef(sweep_id, project, entity, host), None
    # in a Flyte action: an id and state file every attempt finds (from the run and action)
    local_id: str | None = None
    state: str | None = None
    tctx = flyte.ctx()
    if tctx:
        action = getattr(tctx, "task_action", None) or tctx.action
        local_id = local_sweep_id(action.run_name or "run", action.name)
        base = tctx.run_base_dir  # the run's folder: every attempt finds the state there
        state = f"{base.rstrip('/')}/wandb-sweeps/{local_id}.json" if base else None
    sweep = create_local_sweep(
        config, project=project, entity=entity, sweep_id=local_id, state=state
    )
    if config.get("early_terminate"):
        logger.warning(
            "sweep %s: early_terminate needs a W&B server; trials run to completion", sweep.sweep_id
        )
    try:
        names = {path[0] for path in parameter_paths(config["parameters"])}
        for run_id in prior_runs or ():  # the offline runs named, as trials already run
            folder = find_offline_run_dir(run_id)
            if folder is None:
                raise FileNotFoundError(
                    f"prior run {run_id!r} not found under WANDB_DIR: the local controller can "
                    "only add offline runs it can read"
                )
            rec = read_run(folder / f"run-{run_id}.wandb")
            params = {k: v for k, v in rec.config.items() if k in names}
            sweep.add_prior(run_id, params, rec.summary, rec.history, finished=rec.exit_code == 0)
    except BaseException:
        sweep.close()
        raise
    logger.info("created local sweep %s (%s)", sweep.sweep_id, config["method"])
    return SweepRef(sweep.sweep_id, project, entity, host, local=True), sweep
