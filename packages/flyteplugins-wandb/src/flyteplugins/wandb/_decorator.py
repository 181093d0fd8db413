"""``@wandb_init``: checks the settings at decoration, wraps a task's function in place (so
overrides, registries and Elastic workers keep W&B) or a plain function, and adds one ``Wandb``
link per page the task's runs will have. Each call of the wrapper is a ``_call._Call``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast, overload

from flyteplugins.wandb_core import DistributedInfo

from . import _flyte
from ._call import _Call
from ._extension import download_hook
from ._settings import normalize_settings, refuse_extras_for_function
from ._state import get_wandb_run

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__flyteplugins_wandb_init__"


def get_wandb_run_dir() -> str | None:
    """The folder whose files W&B uploads with the current run (``run.dir``, as 2.x), or ``None``;
    its parent is the run's whole local folder."""
    run = get_wandb_run()
    if run is None:
        return None
    return cast("str", run.dir)


def get_distributed_info() -> DistributedInfo | None:
    """Rank, local rank, world size, local world size, worker index and count; ``None`` outside
    a distributed job (``RANK``/``WORLD_SIZE`` unset)."""
    if "RANK" not in os.environ and "WORLD_SIZE" not in os.environ:
        return None
    from ._distributed import read_topology

    topology = read_topology(os.environ)
    return None if topology is None else topology.info()


@overload
def wandb_init(_func: F) -> F: ...


@overload
def wandb_init(
    _func: None = None,
    *,
    run_mode: str | None = None,
    rank_scope: str | None = None,
    download_logs: bool | str | os.PathLike[str] | None = None,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    report: bool | None = None,
    log_outputs: bool | None = None,
    log_inputs: bool | None = None,
    **init_kwargs: Any,
) -> Callable[[F], F]: ...


def wandb_init(
    _func: Any = None,
    *,
    run_mode: str | None = None,
    rank_scope: str | None = None,
    download_logs: bool | str | os.PathLike[str] | None = None,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    report: bool | None = None,
    log_outputs: bool | None = None,
    log_inputs: bool | None = None,
    **init_kwargs: Any,
) -> Any:
    """Start a W&B run around a Flyte task (put it *above* ``@env.task``) or a plain function.

    ``run_mode`` (``"auto"``, ``"new"``, ``"shared"``) and ``rank_scope`` (``"global"``,
    ``"worker"``) say which processes log to which run; ``host`` selects a self-hosted W&B
    server; ``download_logs=True`` downloads the run's files after the task (needs the
    ``[sweeps]`` extra). ``report=True`` adds a W&B tab to the task's Flyte report,
    ``log_outputs=True`` logs the ``File``/``Dir`` outputs as artifacts by reference (scalars
    into the summary), ``log_inputs=True`` puts scalar inputs into the config and declares the
    use of ``File``/``Dir`` inputs an upstream task logged (tasks only). Any other keyword
    (``name``, ``tags``, ``config``, ``group``,
    ``settings``, ``resume``, ...) goes to ``wandb.init``. These settings win over the
    ``wandb_config`` context and apply to this task (and its traces) only.
    """
    settings_obj = init_kwargs.pop("settings", None)
    raw = {
        "run_mode": run_mode,
        "rank_scope": rank_scope,
        "download_logs": download_logs,
        "project": project,
        "entity": entity,
        "host": host,
        "report": report,
        "log_outputs": log_outputs,
        "log_inputs": log_inputs,
        **init_kwargs,
    }
    opts = normalize_settings(raw)
    if settings_obj is not None:
        opts["settings"] = settings_obj

    def apply(target: Any) -> Any:
        if _flyte.is_task_template(target):
            return _wrap_task(target, opts)
        if callable(target):
            if getattr(target, _MARK, None) is not None:
                raise ValueError(f"@wandb_init is applied twice to {target!r}")
            refuse_extras_for_function(opts, target)
            return _wrap_callable(target, opts, task_wrapper=False)
        raise TypeError(
            f"@wandb_init decorates a Flyte task or a function, not {target!r} "
            f"({type(target).__name__})"
        )

    if _func is not None:
        return apply(_func)
    return apply


def _wrap_task(task: Any, opts: dict[str, Any]) -> Any:
    """Wrap the template's function in place: overrides, registries and Elastic keep W&B."""
    func = task.func
    if getattr(func, _MARK, None) is not None:
        raise ValueError(f"@wandb_init is applied twice to the task {task.name!r}")
    task.func = _wrap_callable(func, opts, task_wrapper=True)
    if opts.get("report"):
        task.report = True  # Flyte writes (and its UI shows) the task's report
    from ._link import Wandb

    links = tuple(_task_links(task, opts, Wandb))
    task.links = (*tuple(task.links or ()), *links)
    keep_links_on_override(task, links, lambda t: _task_links(t, opts, Wandb))
    return task


def keep_links_on_override(
    task: Any, ours: Sequence[Any], make_links: Callable[[Any], Sequence[Any]]
) -> None:
    """``ext.keep_links_on_override``: ``task.override(...)`` returns a task whose links are the
    caller's, then ``make_links(new_task)`` (a hook installed on ``task`` before runs first)."""
    previous = vars(task).get("override") or functools.partial(type(task).override, task)
    own = {id(link) for link in ours}

    def override(*args: Any, **kwargs: Any) -> Any:
        new = previous(*args, **kwargs)
        fresh = tuple(make_links(new))
        new.links = (*(link for link in new.links or () if id(link) not in own), *fresh)
        keep_links_on_override(new, fresh, make_links)
        return new

    override.__doc__ = type(task).override.__doc__
    object.__setattr__(task, "override", override)


def _task_links(task: Any, opts: Mapping[str, Any], link_cls: Any) -> list[Any]:
    """One link per page the task's runs will have (one per worker in worker scope)."""
    shape = None
    if getattr(task, "plugin_config", None) is not None:  # Elastic / clustered TorchRun config
        from ._distributed import shape_of_config

        shape = shape_of_config(task.plugin_config)
    common = {k: opts.get(k) for k in ("project", "entity", "host", "id", "run_mode", "rank_scope")}
    # Flyte may return a cached result instead of running the task: its own run may never exist.
    common["cached"] = getattr(getattr(task, "cache", None), "behavior", None) == "auto"
    if shape is None:
        return [link_cls(**common)]
    common.update(nnodes=shape[0], nproc_per_node=shape[1])
    workers = link_cls(**common).urls("run", "action")
    if len(workers) <= 1:
        return [link_cls(**common)]
    name = "Weights & Biases (worker {})"
    return [link_cls(**common, worker=i, name=name.format(i)) for i in range(len(workers))]


def _wrap_callable(func: Callable[..., Any], opts: dict[str, Any], *, task_wrapper: bool) -> Any:
    name = getattr(func, "__qualname__", getattr(func, "__name__", "function"))
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = _Call(opts, name, task_wrapper=task_wrapper)
            call.enter()
            try:
                call.before(func, args, kwargs)
                result = await func(*args, **kwargs)
                call.after(func, result)
            except BaseException as exc:
                call.exit(exc)
                await call.settle()
                raise
            call.exit(None)
            await call.settle()
            download = call.download_request()
            if download is not None:
                await download_hook("after_task_async")(**download)
            return result

        setattr(async_wrapper, _MARK, opts)
        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _Call(opts, name, task_wrapper=task_wrapper)
        call.enter()
        try:
            call.before(func, args, kwargs)
            result = func(*args, **kwargs)
            call.after(func, result)
        except BaseException as exc:
            call.exit(exc)
            raise
        call.exit(None)
        download = call.download_request()
        if download is not None:
            download_hook("after_task")(**download)
        return result

    setattr(wrapper, _MARK, opts)
    return wrapper
