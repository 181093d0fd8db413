"""The run's client starts behind the task's own code: ``start="background"``, the default
(``start="blocking"`` is the start of 3.0 and of the published 2.x: ``wandb.init`` returns before
the task's code runs).

A fresh process spends about a second on W&B before a run exists (measured offline on the 2-core
machine: ``import wandb`` ~0.5 s, then in the first ``wandb.init`` the client's own lazy import of
its launch and public-API modules ~0.3 s, the wandb-core service launch ~0.2 s and the package
list it records ~0.15 s). Almost every task has start-up of its own (data, model,
``init_process_group``) that this can overlap, so the decorated call gets a :class:`PendingRun`
at once and ``wandb.init`` runs in a thread of its own.

* What the user does with the run before it exists is kept in order and replayed on it when it
  is ready: ``log`` (with the time it was called, as ``_timestamp``), ``define_metric``,
  ``config``/``summary`` writes, ``alert``, ``mark_preempting``, setting ``name``/``notes``/
  ``tags``. Anything else (reading ``config``, ``settings``, ``dir``, ``url``, artifacts, ...)
  waits for the run and then acts on it; ``id`` is known up front.
* A start that fails raises its own error (``WandbApiKeyMissing``, ``WandbServerUnreachable``,
  the client's) at the first use after it failed, else at the end of the call; a replayed call
  that fails raises there too. A missing API key, and a server that refuses connections, are
  found before the task's code runs (the start is then done as ``start="blocking"``, which fails
  the same way as before).
* Kept blocking: ``start="blocking"``, sweep trials (the agent assigns and watches the run),
  shared-mode writers (their start and finish are ordered with the other ranks').
* ``isinstance(run, wandb.Run)`` holds for the pending run too (its ``__class__`` is the
  client's), so framework code that checks it (Lightning's logger) takes the run.
* The client reads the ``WANDB_*`` environment once per process, when it first sets up, which a
  background start does while the task's code runs: set those variables before the task starts
  (as a task environment's ``env_vars`` does), not in its body; a change in the body never
  reached the run with a blocking start either.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

#: Values of the ``start`` setting.
START_MODES: Final = ("background", "blocking")
DEFAULT_START: Final = "background"
#: Seconds the call waits to learn that a server refuses connections before going on without.
CONNECT_LOOK_S: Final = 1.0


def check_start(value: Any) -> None:
    """``start`` is one of :data:`START_MODES` (or unset)."""
    if value is None or value in START_MODES:
        return
    choices = ", ".join(repr(m) for m in START_MODES)
    raise ValueError(f"invalid start={value!r}; expected one of {choices}")


class _Later:
    """What a replayed call returns (``define_metric``'s metric): the real one once it ran."""

    def __init__(self, run: PendingRun) -> None:
        self._pending_run = run
        self._value: Any = None
        self._done = False

    def _set(self, value: Any) -> None:
        self._value, self._done = value, True

    def __getattr__(self, name: str) -> Any:
        self._pending_run._ready_run()
        return getattr(self._value, name)

    def __repr__(self) -> str:
        return repr(self._value) if self._done else "<W&B result pending the run's start>"


class _Op:
    """One call made before the run existed: ``path`` from the run (``"log"``,
    ``"config.update"``), its arguments, and where its result goes."""

    __slots__ = ("args", "kwargs", "path", "result")

    def __init__(self, path: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.path, self.args, self.kwargs = path, args, kwargs
        self.result: _Later | None = None

    def apply(self, run: Any) -> Any:
        *owners, name = self.path.split(".")
        target = run
        for owner in owners:
            target = getattr(target, owner)
        if name.startswith("="):  # an attribute set: "=name"
            setattr(target, name[1:], self.args[0])
            return None
        out = getattr(target, name)(*self.args, **self.kwargs)
        if self.result is not None:
            self.result._set(out)
        return out


class _Part:
    """``run.config`` / ``run.summary`` before the run exists: writes kept, reads wait."""

    def __init__(self, run: PendingRun, name: str) -> None:
        object.__setattr__(self, "_pending_run", run)
        object.__setattr__(self, "_name", name)

    def _real(self) -> Any:
        return getattr(self._pending_run._ready_run(), self._name)

    def _later(self, what: str, *args: Any, **kwargs: Any) -> Any:
        return self._pending_run._submit(f"{self._name}.{what}", args, kwargs)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._later("update", *args, **kwargs)

    def setdefaults(self, *args: Any, **kwargs: Any) -> None:
        self._later("setdefaults", *args, **kwargs)

    def __setitem__(self, key: str, value: Any) -> None:
        self._later("__setitem__", key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        self._later("=" + key, value)

    def __getattr__(self, key: str) -> Any:
        return getattr(self._real(), key)

    def __getitem__(self, key: str) -> Any:
        return self._real()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._real()

    def __iter__(self) -> Any:
        return iter(self._real())

    def __len__(self) -> int:
        return len(self._real())

    def __repr__(self) -> str:
        return repr(self._real())


class PendingRun:
    """The call's W&B run while (and after) its client starts in the background.

    Until the run is ready, the calls listed in the module's docstring are kept and return at
    once; every other attribute waits for the run. Once ready, every attribute is the run's own.
    """

    def __init__(self, run_id: str, project: str | None, entity: str | None) -> None:
        self.id = run_id
        self._planned = {"project": project, "entity": entity}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._queue: list[_Op] = []
        self._run: Any = None  # set once the kept calls are replayed: the run is ready
        self._client_run: Any = None  # the client's run, as soon as wandb.init returned it
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Any], None]] = []
        self._thread: threading.Thread | None = None
        self.config = _Part(self, "config")
        self.summary = _Part(self, "summary")

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """The client's ``Run`` class once wandb is imported, so that code written for the
        client's run (``isinstance(run, wandb.Run)``, as Lightning's logger checks) accepts this
        one; ``type(run)`` stays :class:`PendingRun`."""
        module = sys.modules.get("wandb.sdk.wandb_run")
        client_run = getattr(module, "Run", None)
        return client_run if isinstance(client_run, type) else PendingRun

    # -- the start, in its own thread ---------------------------------------------------------

    def _start(self, init: Callable[[], Any]) -> None:
        self._thread = threading.Thread(
            target=self._starting, args=(init,), name=f"wandb-start-{self.id}", daemon=True
        )
        self._thread.start()

    def _starting(self, init: Callable[[], Any]) -> None:
        try:
            run = init()
        except BaseException as exc:
            with self._lock:
                self._error = exc
                self._queue.clear()
            self._ready.set()
            return
        self._replay(run)

    def _started(self, run: Any) -> None:
        self._client_run = run

    def _replay(self, run: Any) -> None:
        """Apply the kept calls in order; calls made meanwhile are kept and applied after."""
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._run = run
                    callbacks, self._callbacks = self._callbacks, []
                    break
            for op in batch:
                try:
                    op.apply(run)
                except Exception as exc:  # raised to the user at the next use / the end
                    with self._lock:
                        if self._error is None:
                            self._error = exc
        self.config = run.config
        self.summary = run.summary
        self._ready.set()
        for callback in callbacks:
            callback(run)

    # -- the user's side ----------------------------------------------------------------------

    def _ready_run(self) -> Any:
        """The started run (waiting for it); the start's error if it failed."""
        self._ready.wait()
        self._raise_error()
        return self._run

    def _raise_error(self) -> None:
        error = self._error
        if error is not None:
            self._error = None if self._run is not None else error  # a replay error: raised once
            raise error

    def _submit(self, path: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        op = _Op(path, args, kwargs)
        with self._lock:
            if self._run is None and self._error is None:
                if path == "define_metric":
                    op.result = _Later(self)
                self._queue.append(op)
                return op.result
        self._raise_error()
        return op.apply(self._run)

    def log(self, data: Any, step: Any = None, commit: Any = None, **kwargs: Any) -> None:
        if self._run is not None:
            self._raise_error()
            return self._run.log(data, step, commit, **kwargs)  # type: ignore[no-any-return]
        if isinstance(data, dict) and "_timestamp" not in data:
            data = {**data, "_timestamp": time.time()}
        return self._submit("log", (data, step, commit), kwargs)  # type: ignore[no-any-return]

    def define_metric(self, *args: Any, **kwargs: Any) -> Any:
        return self._submit("define_metric", args, kwargs)

    def alert(self, *args: Any, **kwargs: Any) -> None:
        self._submit("alert", args, kwargs)

    def mark_preempting(self) -> None:
        self._submit("mark_preempting", (), {})

    @property
    def _is_finished(self) -> bool:
        run = self._run
        return bool(getattr(run, "_is_finished", False)) if run is not None else False

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("name", "notes", "tags"):
            self._submit("=" + name, (value,), {})
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_run", "_client_run", "_error", "_lock", "_ready"):
            raise AttributeError(name)
        planned = self.__dict__.get("_planned", {}).get(name)
        if planned is not None and self._run is None:
            return planned
        return getattr(self._ready_run(), name)

    def __repr__(self) -> str:
        run = self._run
        return repr(run) if run is not None else f"<W&B run {self.id} (starting)>"

    # -- the decorator's side -----------------------------------------------------------------

    def when_ready(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(run)`` once the run is ready (now, if it is); never if it failed."""
        with self._lock:
            if self._run is None and self._error is None and not self._ready.is_set():
                self._callbacks.append(callback)
                return
        if self._run is not None:
            callback(self._run)

    def wait(self) -> BaseException | None:
        """Wait for the start; its error (kept for the end of the call), else ``None``."""
        self._ready.wait()
        return self._error if self._run is None else None

    def replay_error(self) -> BaseException | None:
        """The first kept call that failed when it was replayed and was not raised yet."""
        with self._lock:
            error = self._error if self._run is not None else None
            self._error = None if self._run is not None else self._error
        return error

    def finish(self, *args: Any, **kwargs: Any) -> None:
        self._ready_run().finish(*args, **kwargs)


def real(run: Any) -> Any:
    """The client's run behind ``run`` (itself when not pending; ``None`` before the client
    returned it)."""
    return run._client_run if isinstance(run, PendingRun) else run


def when_ready(run: Any, callback: Callable[[Any], None]) -> None:
    """``callback(run)`` now for a started run, once it is ready for a pending one."""
    if isinstance(run, PendingRun):
        run.when_ready(callback)
    else:
        callback(run)


def failed_start(run: Any) -> BaseException | None:
    """The error of a background start that never produced a run (waiting for it to end)."""
    return run.wait() if isinstance(run, PendingRun) else None


def deferred_error(run: Any) -> BaseException | None:
    """What a background start leaves to raise at the end of the call: the start's error, else
    a kept call that failed when replayed (``None`` for a run started in the foreground)."""
    if not isinstance(run, PendingRun):
        return None
    return run.wait() or run.replay_error()


class WandbStartFailed(UserWarning):
    """The run's background start failed while the task's code failed too (its error wins)."""


def surface(error: BaseException, during: BaseException | None) -> None:
    """Raise ``error`` at the end of a call whose code succeeded; warn when it failed itself,
    so the user's own exception stays the one raised."""
    if during is None:
        raise error
    import warnings

    from ._resilience import redact

    warnings.warn(
        redact(f"the W&B run of this call did not start or record everything: {error!r}"),
        WandbStartFailed,
        stacklevel=3,
    )


def _refuses(api_url: str, timeout: float = CONNECT_LOOK_S) -> bool:
    """Whether the server plainly refuses (no such host, nothing listening) right now."""
    parts = urlsplit(api_url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return False
    except (ConnectionRefusedError, socket.gaierror):
        return True
    except OSError:  # slow or filtered: the client's own bounds decide, in the background
        return False


def begin(
    request: Any, run_id: str | None, *, setting: Any, kind: str, project: Any, entity: Any
) -> Any:
    """Start the run of ``request`` (a ``_backend.InitRequest``): the client's run when the
    start is blocking, else a :class:`PendingRun` whose client starts in a thread.

    ``run_id`` is the id the resolver planned (``None``: a fresh one is made here, so that links
    and child tasks can name the run before it exists).
    """
    from . import _backend, _resolve

    check_start(setting)
    blocking = (setting or DEFAULT_START) == "blocking" or kind == "trial" or request.shared
    if not blocking:
        mode = _backend.planned_mode(request)
        # Found before the task's code runs, as with a blocking start.
        _backend.check_api_key(mode, request.server, request.settings)
        if mode in ("online", "shared") and _refuses(request.server.api_url):
            blocking = True  # fails (or falls back offline) exactly as a blocking start does
    if blocking:
        return _backend.init_run(request)
    if run_id is None:
        run_id = _resolve.fresh_run_id()
        request.kwargs["id"] = run_id
    from . import _globals

    environ: dict[str, str] | None = None
    if _globals._wandb_imported():
        _client_reads_environment()  # now, before the task's code runs (~2 ms)
    else:
        environ = _wandb_environ()  # what the background start's first read is compared with
    pending = PendingRun(run_id, project, entity)
    pending._start(functools.partial(_init_in_background, request, pending, environ))
    return pending


def _wandb_environ() -> dict[str, str]:
    """The ``WANDB_*`` variables, but ``WANDB_SERVICE`` (the client writes it when it starts a
    service, for its child processes)."""
    return {k: v for k, v in os.environ.items() if k.startswith("WANDB_") and k != "WANDB_SERVICE"}


def _client_reads_environment() -> bool:
    """Have this process's wandb load its settings (``WANDB_*``, settings files) now, if it has
    not yet; whether this call loaded them. The client loads them once per process, lazily, and
    two threads doing it at once can see half-loaded settings, so a run that starts in the
    background loads them before the task's code can (or, with wandb already imported, before
    the task's code runs at all)."""
    from wandb.sdk import wandb_setup

    with _SETTINGS_LOCK:  # concurrent tasks' runs starting in the background
        setup = wandb_setup.singleton()
        if setup.settings_if_loaded is not None:
            return False
        _ = setup.settings
        return True


_SETTINGS_LOCK = threading.Lock()


class WandbEnvironmentChanged(UserWarning):
    """The task changed ``WANDB_*`` variables while its run's client was first reading them."""


def _init_in_background(request: Any, pending: PendingRun, environ: dict[str, str] | None) -> Any:
    import wandb  # noqa: F401  (first, so that wandb.log in the task reaches the run meanwhile)

    from . import _backend, _globals

    if _client_reads_environment() and environ is not None:
        now = _wandb_environ()
        changed = sorted(k for k in environ.keys() | now.keys() if environ.get(k) != now.get(k))
        if changed:
            import warnings

            warnings.warn(
                f"the task changed {', '.join(changed)} while its W&B run was starting in the "
                "background, and the client read them for this process: set W&B variables "
                "before the task starts (its environment's env_vars), or use start='blocking'",
                WandbEnvironmentChanged,
                stacklevel=2,
            )
    _globals.install_pending()
    return _backend.init_run(request, on_started=pending._started)
