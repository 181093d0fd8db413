"""``@wandb_sweep``: create (or reuse) a W&B sweep around a Flyte task.

Per call: resolve the sweep settings (decorator > ``wandb_sweep_config`` context >
``wandb_config`` for project/entity/host) -> reuse the sweep an enclosing ``@wandb_sweep`` task
published, or validate the configuration and create one (``wandb.sweep`` on a server, a local
controller offline or when asked) -> publish it to the code inside (``get_wandb_sweep_id()``) and
to child tasks (``custom_context``) -> run the task -> with ``download_logs``, download every
trial's logs through a ``flyte.trace`` function.

A local sweep's id is derived from the Flyte run and action (:func:`._controller.local_sweep_id`),
so the task's ``WandbSweep`` link names it before the task runs, and a retry of the task resumes
the same sweep from its state file in the run's folder. A server sweep's id is the server's: the
task prints the sweep's page when it is created.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, TypeVar, overload

from flyteplugins.wandb.ext import (
    keep_links_on_override,
    override_custom_context,
    server_url,
    sweep_page_url,
)

from ._context import (
    SweepRef,
    _check_settings,
    read_sweep,
    read_sweep_settings,
    run_settings,
    split_settings,
    sweep_entries,
)
from ._validate import check_partial, validate_sweep_config

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)
_MARK = "__flyteplugins_wandb_sweep__"

_current: ContextVar[SweepRef | None] = ContextVar("flyteplugins_wandb_sweep", default=None)


def current_sweep() -> SweepRef | None:
    """The sweep of the enclosing ``@wandb_sweep`` call, else the one published to this task."""
    ref = _current.get()
    if ref is not None:
        return ref
    try:
        ref = read_sweep()
    except ValueError:
        ref = None
    if ref is None and os.environ.get("WANDB_SWEEP_ID"):
        # inside a wandb.agent trial (a thread of its own, outside the task's context)
        return SweepRef(os.environ["WANDB_SWEEP_ID"])
    return ref


def get_wandb_sweep_id() -> str | None:
    """The id of the current sweep (inside a ``@wandb_sweep`` task or its children), or ``None``."""
    ref = current_sweep()
    return None if ref is None else ref.id


def _is_task_template(obj: Any) -> bool:
    from flyte import TaskTemplate

    return isinstance(obj, TaskTemplate)


@overload
def wandb_sweep(_func: F) -> F: ...


@overload
def wandb_sweep(
    _func: None = None,
    *,
    project: str | None = None,
    entity: str | None = None,
    download_logs: bool | None = None,
    prior_runs: list[str] | None = None,
    local_controller: bool | None = None,
    **sweep_config: Any,
) -> Callable[[F], F]: ...


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
    """Create a W&B sweep when the task runs (put it *above* ``@env.task``).

    The sweep configuration comes from ``wandb_sweep_config`` in the context, or from keywords
    here (``method``, ``metric``, ``parameters``, ``name``, ``early_terminate``, or the whole dict
    as ``sweep={...}``), which win. ``project``/``entity`` default to the ``wandb_config``
    context. Offline (``WANDB_MODE=offline`` or ``wandb_config(mode="offline")``) or with
    ``local_controller=True`` the sweep is run by a local controller on W&B's open-source engine.
    Inside the task, ``get_wandb_sweep_id()`` returns the id and ``run_agent`` /
    ``run_parallel_agents`` run trials; child tasks reuse the sweep. ``download_logs=True``
    downloads every trial's logs after the task.
    """
    whole = sweep_config.pop("sweep", None)
    if whole is not None:
        if not isinstance(whole, Mapping):
            raise TypeError(f"sweep={whole!r}: expected the sweep configuration dict")
        sweep_config = {**whole, **sweep_config}
    opts: dict[str, Any] = {
        k: v
        for k, v in {
            **sweep_config,
            "project": project,
            "entity": entity,
            "download_logs": download_logs,
            "prior_runs": prior_runs,
            "local_controller": local_controller,
        }.items()
        if v is not None
    }
    _check_settings(opts)
    check_partial(opts)
    if whole is not None:
        # sweep={...} is the whole configuration: check it whole, now
        validate_sweep_config(split_settings(opts)[0])
    if download_logs:
        from . import download  # noqa: F401  (the log download must be importable now)

    def apply(target: Any) -> Any:
        if _is_task_template(target):
            func = target.func
            if getattr(func, _MARK, None) is not None:
                raise ValueError(f"@wandb_sweep is applied twice to the task {target.name!r}")
            target.func = _wrap(func, opts)
            links = _sweep_links(target, opts)
            target.links = (*tuple(target.links or ()), *links)
            keep_links_on_override(target, links, lambda task: _sweep_links(task, opts))
            return target
        if callable(target):
            raise TypeError(
                f"@wandb_sweep decorates a Flyte task: put it above @env.task on {target!r}"
            )
        raise TypeError(f"@wandb_sweep decorates a Flyte task, not {target!r}")

    if _func is not None:
        return apply(_func)
    return apply


def _sweep_links(task: Any, opts: Mapping[str, Any]) -> tuple[Any, ...]:
    """The links ``@wandb_sweep`` adds to a task (computed again for an overridden task)."""
    from ._link import WandbSweep

    return (
        WandbSweep(
            project=opts.get("project"),
            entity=opts.get("entity"),
            local_controller=opts.get("local_controller"),
        ),
    )


def _wrap(func: Callable[..., Any], opts: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = _SweepCall(opts)
            try:
                call.enter()
                try:
                    result = await func(*args, **kwargs)
                finally:
                    call.exit()
                if call.download is not None:
                    from .download import after_task_async

                    await after_task_async(**call.download)
                return result
            finally:
                call.close()

        setattr(async_wrapper, _MARK, opts)
        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _SweepCall(opts)
        try:
            call.enter()
            try:
                result = func(*args, **kwargs)
            finally:
                call.exit()
            if call.download is not None:
                from .download import after_task

                after_task(**call.download)
            return result
        finally:
            call.close()

    setattr(wrapper, _MARK, opts)
    return wrapper


def _is_offline(mode: str | None) -> bool:
    from flyteplugins.wandb.ext import effective_mode

    return effective_mode(mode) in ("offline", "disabled")


def is_local(local_controller: Any, mode: str | None) -> bool:
    """Whether a new sweep is run by the local controller: when asked (``local_controller``),
    or when W&B is offline for a run with the ``mode`` the settings give."""
    return bool(local_controller) or _is_offline(mode)


_CONFIG_KEYS = ("method", "metric", "parameters")


class _SweepCall:
    def __init__(self, opts: Mapping[str, Any]) -> None:
        self.opts = opts
        self.token: Any = None
        self.publish: Any = None
        self.download: dict[str, Any] | None = None
        self.created: Any = None  # the local sweep this call created (lives as long as it)
        self.agent: AbstractContextManager[None] | None = None

    def enter(self) -> None:
        try:
            self._enter()
        except BaseException:
            self.exit()  # undo what was set up before the failure
            raise

    def _enter(self) -> None:
        context = read_sweep_settings()
        values = {**context, **self.opts}
        config, settings = split_settings(values)
        wandb_cfg = run_settings()
        project = settings.get("project") or wandb_cfg.get("project")
        entity = settings.get("entity") or wandb_cfg.get("entity")
        host = wandb_cfg.get("host")
        offline = _is_offline(wandb_cfg.get("mode"))
        published = read_sweep()
        reused = published is not None and not any(k in self.opts for k in _CONFIG_KEYS)
        if reused and published is not None:
            ref = published
            # the task that created the sweep downloads its logs, not every child reusing it
            settings["download_logs"] = self.opts.get("download_logs")
        else:
            config = validate_sweep_config(config)
            local = is_local(settings.get("local_controller"), wandb_cfg.get("mode"))
            ref, self.created = _create(config, settings, project, entity, host, local)
        if ref.local or (ref.host and server_url({"host": ref.host}) != server_url({})):
            # the specification's wandb.agent(get_wandb_sweep_id(), ...) runs local trials too,
            # and reaches a server named only by the settings without an environment variable
            from ._agent import local_wandb_agent

            self.agent = local_wandb_agent()
            self.agent.__enter__()
        self.token = _current.set(ref)
        self.publish = override_custom_context(sweep_entries(ref))
        self.publish.__enter__()
        if settings.get("download_logs"):
            self.download = {
                "sweep_id": ref.id,
                "project": ref.project,
                "entity": ref.entity,
                "host": ref.host,
                "offline": offline,
                "download_logs": settings["download_logs"],  # True, or the folder to use
            }

    def exit(self) -> None:
        """After the task's code: its context and ``wandb.agent`` as they were before."""
        try:
            if self.publish is not None:
                self.publish.__exit__(None, None, None)
                self.publish = None
        finally:
            if self.token is not None:
                _current.reset(self.token)
                self.token = None
            if self.agent is not None:
                self.agent.__exit__(None, None, None)
                self.agent = None

    def close(self) -> None:
        """After the log download: the local sweep this call created is forgotten."""
        if self.created is not None:
            self.created.close()


def _create(
    config: dict[str, Any],
    settings: Mapping[str, Any],
    project: str | None,
    entity: str | None,
    host: str | None,
    local: bool,
) -> tuple[SweepRef, Any]:
    """The new sweep's reference, and the local sweep object (``None`` on a server)."""
    prior_runs = settings.get("prior_runs")
    if local:
        from ._controller import create_local_sweep

        sweep_id, state = _local_identity()
        sweep = create_local_sweep(
            config, project=project, entity=entity, sweep_id=sweep_id, state=state
        )
        if config.get("early_terminate"):
            logger.warning(
                "sweep %s: early_terminate needs a W&B server; the local controller runs every "
                "trial to completion",
                sweep.sweep_id,
            )
        if prior_runs:
            try:
                _seed_prior_runs(sweep, prior_runs)
            except BaseException:
                sweep.close()
                raise
        logger.info("created local sweep %s (%s)", sweep.sweep_id, config["method"])
        return SweepRef(sweep.sweep_id, project, entity, host, local=True), sweep
    import wandb

    from ._agent import client_host

    with client_host(host):
        sweep_id = str(wandb.sweep(config, entity=entity, project=project, prior_runs=prior_runs))
    # the task's link could only name the project's sweeps page: say where this sweep is
    url = sweep_page_url({"host": host, "entity": entity, "project": project}, sweep_id)
    print(f"W&B sweep of this task: {url}", flush=True)
    return SweepRef(sweep_id, project, entity, host, local=False), None


def _local_identity() -> tuple[str | None, str | None]:
    """The id and state file of a local sweep created in the running Flyte action (derived from
    the run and action, so every attempt finds the same), or ``(None, None)`` outside Flyte."""
    import flyte

    from ._controller import local_sweep_id, state_path

    tctx = flyte.ctx()
    if not tctx:
        return None, None
    action = getattr(tctx, "task_action", None) or tctx.action
    sweep_id = local_sweep_id(action.run_name or "run", action.name)
    base = tctx.run_base_dir
    return sweep_id, state_path(base, sweep_id) if base else None


def _seed_prior_runs(sweep: Any, prior_runs: list[str]) -> None:
    """Give the local controller the offline runs named in ``prior_runs``."""
    from flyteplugins.wandb.ext import read_run

    from .download import find_offline_run_dir

    names = [".".join(p) for p in _leaf_names(sweep.config["parameters"])]
    for run_id in prior_runs:
        folder = find_offline_run_dir(run_id)
        if folder is None:
            raise FileNotFoundError(
                f"prior run {run_id!r} not found under WANDB_DIR: the local controller can only "
                "add offline runs it can read"
            )
        record = read_run(folder / f"run-{run_id}.wandb")
        params = {k: v for k, v in record.config.items() if k in {n.split(".")[0] for n in names}}
        sweep.add_prior(
            run_id, params, record.summary, record.history, finished=record.exit_code == 0
        )


def _leaf_names(parameters: Mapping[str, Any]) -> list[tuple[str, ...]]:
    from ._controller import parameter_paths

    return parameter_paths(parameters)
