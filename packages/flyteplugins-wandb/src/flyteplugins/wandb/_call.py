"""One decorated call's run: merge the settings (decorator over ``wandb_config``), let the
resolver decide everything about the run, start, reuse or skip it (all or nothing), run the
extensions the call needs around the user's code, and finish with exit code 0 or non-zero on
*any* exception, which propagates unchanged (a failure while finishing is only a warning).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from . import _backend, _client, _flyte, _resolve, _state
from ._context import (
    PREFIX,
    override_custom_context,
    parent_entries,
    read_parent,
    read_wandb_config,
)
from ._extension import Extension
from ._settings import check_download_logs, extras_wanted
from ._state import ActiveRun, current_active


def _exit_code(exc: BaseException | None) -> int:
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) and code != 0 else 1
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


def _sweep_trial() -> _resolve.Trial | None:
    """What ``wandb.agent`` assigned, when this call is one of its trials."""
    names = ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH")
    sweep_id, run_id, path = (os.environ.get(name) or None for name in names)
    if not sweep_id or not (path or run_id):
        return None
    return _resolve.Trial(sweep_id=sweep_id, run_id=run_id, param_path=path)


class WandbLinkIncomplete(UserWarning):
    """A task's run started with no entity known anywhere before it, so the task's link could not
    name the run's page: it opens the W&B app instead."""


class _Call:
    """The W&B side of one decorated call: enter before user code, exit after it."""

    def __init__(self, opts: Mapping[str, Any], name: str, *, task_wrapper: bool) -> None:
        self.opts = opts
        self.name = name
        self.task_wrapper = task_wrapper
        self.run: Any = None
        self.owned = False
        self.token: Any = None
        self.publish: AbstractContextManager[None] | None = None
        self.active: ActiveRun | None = None
        self.shared_finish: Any = None  # a _shared_finish.SharedFinish: the finishes' order
        self.extensions: list[Extension] = []
        self.had_extras = False
        self.request: Any = None  # the InitRequest and ResolvedRun of the run (for rewind_to)
        self.resolved: _resolve.ResolvedRun | None = None

    def enter(self) -> None:
        """Start (or join, or skip) the call's run, all or nothing: on any failure the run is
        finished as failed and every change undone before the error propagates."""
        try:
            self._enter()
        except BaseException as exc:
            self._undo_enter(exc)
            raise

    def _undo_enter(self, exc: BaseException) -> None:
        try:
            self.exit(exc)
        except Exception as undo_error:  # never replace the error that stopped the start
            from ._failures import WandbFinishFailed, warn

            warn(
                f"undoing the start of the W&B run after {exc!r} also failed: {undo_error!r}",
                WandbFinishFailed,
            )

    def _enter(self) -> None:
        import flyte

        tctx = flyte.ctx()
        settings = _resolve.merge_settings(read_wandb_config(), self.opts)
        check_download_logs(settings.get("download_logs"))
        topology = None
        if "RANK" in os.environ or "WORLD_SIZE" in os.environ:  # distributed, or a stray variable
            from ._distributed import read_topology

            topology = read_topology(os.environ)
        distributed: Any = None
        if topology is not None:
            from . import _distributed as distributed

            distributed.clean_worker_environment(os.environ, pid=os.getpid())
        enclosing = current_active()
        kind: _resolve.CallKind = "task" if self.task_wrapper else "function"
        trial = _sweep_trial() if not self.task_wrapper else None
        if trial is not None:
            kind = "trial"

        identity = _flyte.identity(tctx) if tctx else None
        # No Flyte action names a call under torchrun: its job does (outside any job, the
        # resolver's local base from the label).
        launcher_base = None
        if identity is None and distributed is not None:
            launcher_base = distributed.launcher_base(self.name, topology, os.environ)
        in_enclosing = None
        if enclosing is not None and enclosing.run is not None:
            run_id = str(getattr(enclosing.run, "id", None) or enclosing.plan.run_id)
            e = enclosing
            in_enclosing = _resolve.Parent(run_id, e.host, e.entity, e.project, in_process=True)
        published = _resolve.Parent.from_published(
            read_parent() if tctx else None, in_process=False
        )
        if published is not None:  # a parent's run live in this process is logged to, not joined
            live = published.id in _state.live_runs
            published = dataclasses.replace(published, in_process=live)
        parent = _resolve.choose_parent(kind, in_enclosing, published)
        resolved = _resolve.resolve(
            settings,
            kind=kind,
            defaults=_client.read_defaults(),
            identity=identity,
            launcher_base=launcher_base,
            topology=topology,
            parent=parent,
            trial=trial,
            label=identity.action_name if identity else self.name,
        )
        p = resolved.plan
        parent_id = parent.id if parent is not None else None
        run: Any = None
        if p.reuses_parent and parent is not None:
            if parent is in_enclosing and enclosing is not None:
                run = enclosing.run
            else:
                run = _state.live_runs.get(parent.id)
        elif p.initializes:
            extra = dict(resolved.settings)
            user_settings = settings.get("settings")
            if distributed is not None:
                extra.update(distributed.worker_settings(topology, os.environ, user_settings))
            init_kwargs = dict(resolved.init_kwargs)
            if p.shared and distributed is not None:
                base = identity.base if identity else (launcher_base or "")
                user_id = None if kind == "trial" else settings.get("id")
                from ._shared_finish import SharedFinish

                self.shared_finish = SharedFinish.for_plan(
                    p,
                    topology,
                    base,
                    os.environ,
                    parent_id=parent_id,
                    user_id=user_id,
                    plugin_timeout=init_kwargs.get("finish_timeout"),
                    user_settings=user_settings,
                )
                share = self.shared_finish.finish_timeout if self.shared_finish else None
                if share is not None:
                    init_kwargs["finish_timeout"] = share  # this writer's part of the budget
            request = _backend.InitRequest(
                kwargs=init_kwargs,
                server=resolved.server,
                shared=p.shared,
                label=p.label,
                settings=settings.get("settings"),
                extra_settings=extra,
            )
            run = _backend.init_run(request)
            self.request, self.resolved = request, resolved
            self.owned = True
            run_id = str(getattr(run, "id", None) or p.run_id)
            with _state.live_lock:
                _state.live_runs[run_id] = run
            if (
                self.task_wrapper
                and resolved.url is None
                and (topology is None or topology.rank == 0)
            ):
                warnings.warn(
                    "this task's W&B link opens the W&B app, not its run: no entity was known "
                    "when the link rendered (give entity= to @wandb_init or wandb_config, or set "
                    f"WANDB_ENTITY). The run's page: "
                    f"{getattr(run, 'url', None) or '(offline: known after wandb sync)'}",
                    WandbLinkIncomplete,
                    stacklevel=4,
                )
        self.run = run
        entity = getattr(run, "entity", None) or resolved.entity
        project = getattr(run, "project", None) or resolved.project
        host = resolved.server.api_url
        active = ActiveRun(
            run, p, topology, host, entity, project, dict(settings), resolved=resolved
        )
        self.active = active
        active.call = self
        self.token = _state.active_var.set(active)

        if tctx and run is not None and self.task_wrapper:
            published_id = getattr(run, "id", None) or resolved.run_id or p.run_id or ""
            entries = parent_entries(published_id, host, entity, project)
            if (PREFIX + "id") in (tctx.custom_context or {}):
                entries[PREFIX + "id"] = "null"
            cm = override_custom_context(entries)
            cm.__enter__()
            self.publish = cm
        self.extensions = _extensions(self, settings)
        for ext in self.extensions:
            ext.started(self)

    async def settle(self) -> None:
        """In an ``async`` task, after the call ended: let the report tab's writes finish."""
        if self.had_extras:
            from ._report import settle

            await settle()

    def before(self, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
        for ext in self.extensions:
            ext.before(self, func, args, kwargs)

    def after(self, func: Callable[..., Any], result: Any) -> None:
        for ext in self.extensions:
            ext.after(self, func, result)

    def download_request(self) -> dict[str, Any] | None:
        """Arguments of the log download after a successful ``download_logs=True`` task, for the
        process that started the run (or the shared-mode primary) only."""
        active = self.active
        if active is None or not active.plan.initializes or not active.plan.finishes:
            return None
        if not (self.task_wrapper and active.settings.get("download_logs")):
            return None
        mode = (active.resolved.init_kwargs if active.resolved else active.settings).get("mode")
        return {
            "run_id": str(getattr(self.run, "id", None) or active.plan.run_id),
            "project": getattr(self.run, "project", None) or active.project,
            "entity": active.entity,
            "host": active.host,
            "offline": None if mode is None else mode == "offline",
            "download_logs": active.settings["download_logs"],  # True, or the folder to use
        }

    def exit(self, exc: BaseException | None) -> None:
        """Undo the published context, restore the active run, finish the run: each step runs
        even when one before failed; a failed finish is a warning naming the folder to sync."""
        publish, self.publish = self.publish, None
        token, self.token = self.token, None
        extensions, self.extensions = self.extensions, []
        code = _exit_code(exc)
        for ext in extensions:
            ext.closing(self, exc, code)
        try:
            if publish is not None:
                publish.__exit__(None, None, None)
        finally:
            if token is not None:
                _state.active_var.reset(token)
            if self.owned and self.run is not None:
                self.owned = False
                try:
                    self._finish(code)
                except Exception as finish_error:
                    from ._failures import finish_failed

                    finish_failed(self.run, finish_error)
            for ext in extensions:
                ext.ended(self, exc, code)

    def _finish(self, code: int) -> None:
        run = self.run
        with _state.live_lock:
            for key in [k for k, v in _state.live_runs.items() if v is run]:
                del _state.live_runs[key]
        sync = self.shared_finish  # shared mode in a distributed job: order the finishes
        if sync is not None:
            code = sync.before_finish(code)
        try:
            if not _state.is_finished(run):
                _backend.finish_run(run, code, **(sync.finish_report() if sync else {}))
        finally:
            if sync is not None:
                sync.after_finish(code)


def _extensions(call: _Call, settings: Mapping[str, Any]) -> list[Extension]:
    """The extensions ``call`` needs, each module imported only then (a plain task's call gets
    the per-task wandb globals, and the SIGTERM handler on the main thread, nothing else)."""
    out: list[Extension] = []
    if call.owned:
        from ._globals import Globals

        out.append(Globals())
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            from ._preemption import Preemption

            out.append(Preemption())
        if settings.get("sync"):
            from ._sync import AfterRun

            out.append(AfterRun())
    if call.run is not None and call.task_wrapper and extras_wanted(settings):
        from ._report import Native

        out.append(Native(dict(settings)))
        call.had_extras = True
    return out
