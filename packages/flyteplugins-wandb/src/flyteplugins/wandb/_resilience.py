"""Bounded networking for online runs: client retries, the end of a run, and a dead server.

By default the wandb client retries a dead server for many minutes, holding the task's pod. A run
started by this plugin instead:

* retries a bounded number of times (the ``x_*_retry_*`` and ``init_timeout`` settings below),
  unless the user chose those settings, through ``wandb.Settings`` or ``WANDB_*`` variables;
* spends at most ``finish_timeout`` seconds (default 30; setting ``finish_timeout`` of
  ``wandb_config``/``@wandb_init``, 0 = wait for everything) uploading after the task's code has
  returned, then warns, naming what was not uploaded and the ``wandb sync`` command that uploads
  it from the run's local folder, where the client keeps everything (the writers of one shared
  run of a distributed job split that budget: ``_shared_finish.FinishShares``);
* when the server cannot be reached at start, fails within a bounded time with an error that names
  the server, or, with ``offline_fallback=True``, logs offline and says where the files are.

Logging itself never blocks the task's code: ``run.log`` hands data to the client's own process.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._settings import check_finish_timeout, check_offline_fallback

DEFAULT_FINISH_TIMEOUT: Final = 30.0
"""Seconds a run may spend uploading after the task's code returned (``finish_timeout``)."""

CLIENT_BOUNDS: Final[Mapping[str, float]] = {
    # /graphql: run creation, config and metadata updates. ~20 s of retries before giving up.
    "x_graphql_retry_max": 4,
    "x_graphql_retry_wait_max_seconds": 8.0,
    # file_stream: history, summary, console. Rides out about a minute and a half of outage
    # during a long run; the end of the run is bounded by finish_timeout anyway.
    "x_file_stream_retry_max": 7,
    "x_file_stream_retry_wait_max_seconds": 30.0,
    # run file uploads (config.yaml, output.log, media, ...).
    "x_file_transfer_retry_max": 4,
    "x_file_transfer_retry_wait_max_seconds": 10.0,
    # the whole of wandb.init.
    "init_timeout": 60.0,
}
"""Client settings bounded by this plugin unless the user set them (the client's default: none)."""

#: A finish that took this part of its ``finish_timeout`` or more ran into it.
TIMED_OUT_FRACTION: Final = 0.95

PLUGIN_SETTINGS: Final = ("finish_timeout", "offline_fallback")
"""Settings of ``wandb_config``/``@wandb_init`` handled here, never passed to ``wandb.init``."""


class WandbServerUnreachable(RuntimeError):
    """``wandb.init`` could not reach the W&B server within the bounded retries."""


class WandbUploadIncomplete(UserWarning):
    """Part of a run's data was not uploaded; it is kept in the run's local folder."""


class WandbOfflineFallback(UserWarning):
    """The server was unreachable at start and ``offline_fallback=True``: the run logs offline."""


@dataclass(frozen=True)
class Resilience:
    """The plugin's own settings for how a run copes with the server."""

    finish_timeout: float | None = None
    offline_fallback: bool = False


def pop_plugin_settings(kwargs: dict[str, Any]) -> Resilience:
    """Take this module's settings out of the keywords meant for ``wandb.init``."""
    timeout = kwargs.pop("finish_timeout", None)
    fallback = kwargs.pop("offline_fallback", None)
    check_finish_timeout(timeout)
    check_offline_fallback(fallback)
    return Resilience(
        finish_timeout=None if timeout is None else float(timeout),
        offline_fallback=bool(fallback),
    )


def env_var(setting: str) -> str:
    """The variable the client reads ``setting`` from (``x_foo`` -> ``WANDB__FOO``)."""
    if setting.startswith("x_"):
        return "WANDB__" + setting[2:].upper()
    return "WANDB_" + setting.upper()


def _chosen(settings: Any) -> dict[str, Any]:
    """The fields given on a user's own settings (a ``wandb.Settings`` or a plain dict)."""
    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        return {k: v for k, v in settings.items() if v is not None}
    return {n: getattr(settings, n, None) for n in getattr(settings, "model_fields_set", ())}


def finish_budget(
    plugin_timeout: Any, settings: Any = None, environ: Mapping[str, str] | None = None
) -> float:
    """The seconds a run may spend finishing after the task's code returned (0: no limit).

    The plugin's own ``finish_timeout`` (``wandb_config``/``@wandb_init``) wins; else the user's
    choice, on their ``settings`` (a ``wandb.Settings`` or a dict) or in
    ``WANDB_FINISH_TIMEOUT``; else :data:`DEFAULT_FINISH_TIMEOUT`.
    """
    if plugin_timeout is not None:
        check_finish_timeout(plugin_timeout)
        return float(plugin_timeout)
    own = _chosen(settings).get("finish_timeout")
    if own is not None:
        return float(own)
    env = os.environ if environ is None else environ
    name = env_var("finish_timeout")
    text = env.get(name)
    if text is not None and text.strip():
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a number of seconds (e.g. 30)") from None
    return DEFAULT_FINISH_TIMEOUT


def apply_bounds(
    settings: Any, resilience: Resilience, environ: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Bound every retry and the finish of ``settings`` the user left unset; return what was set.

    A setting counts as the user's when it was given on the ``wandb.Settings`` object or through
    its ``WANDB_*`` variable; those are never overridden. ``finish_timeout`` from the plugin's
    own settings wins over both (see :func:`finish_budget`).
    """
    env = os.environ if environ is None else environ
    chosen = set(_chosen(settings))
    applied: dict[str, float] = {}
    for name, value in CLIENT_BOUNDS.items():
        if name in chosen or env_var(name) in env:
            continue
        setattr(settings, name, value)
        applied[name] = value
    if resilience.finish_timeout is not None or not (
        "finish_timeout" in chosen or env_var("finish_timeout") in env
    ):
        budget = finish_budget(resilience.finish_timeout, settings, env)
        settings.finish_timeout = budget
        applied["finish_timeout"] = budget
    return applied


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with the API key (if any appears in it) replaced by ``***``."""
    env = os.environ if environ is None else environ
    key = env.get("WANDB_API_KEY")
    if key and len(key) >= 8:
        text = text.replace(key, "***")
    return text


def is_server_failure(exc: BaseException) -> bool:
    """Whether a failed online ``wandb.init`` means the server could not be reached or kept
    failing, told by the client's public error classes (never by their text): its base
    ``wandb.errors.Error`` (a refused connection) and ``CommError`` (a server that does not
    answer in time), but not a usage error nor a refused key."""
    from wandb import errors

    if isinstance(exc, (errors.UsageError, errors.AuthenticationError)):
        return False
    return isinstance(exc, errors.Error)


def unreachable(base_url: str, elapsed: float, exc: BaseException) -> WandbServerUnreachable:
    """The error raised when the server is down at the start of a run."""
    detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return WandbServerUnreachable(
        f"the W&B server {base_url} could not be reached: wandb.init gave up after "
        f"{elapsed:.0f} s ({detail}). Check the host (wandb_config(host=...) or WANDB_BASE_URL) "
        "and that the task can reach it, or set wandb_config(offline_fallback=True) to log "
        "offline when the server is down and upload later with `wandb sync`."
    )


def _bound(settings: Any, name: str, environ: Mapping[str, str]) -> float:
    """The value the client will use for a bounded setting: its variable, the object, ours."""
    text = environ.get(env_var(name))
    if text:
        try:
            return float(text)
        except ValueError:
            pass
    value = getattr(settings, name, None)
    return float(value) if value is not None else float(CLIENT_BOUNDS[name])


def probe(base_url: str, settings: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """``None`` when the server answers HTTP; otherwise why not, after the GraphQL retry bounds.

    Any HTTP answer below 500 counts as reachable (no credentials are sent). Attempts and waits
    follow the same bounds as the client's GraphQL retries, so the wait is as long as a failed
    ``wandb.init`` would take.
    """
    # Imported here: urllib.request pulls in http.client and email, a few ms of import time that
    # only a run with the offline fallback enabled should pay.
    import urllib.error
    import urllib.request

    env = os.environ if environ is None else environ
    attempts = int(_bound(settings, "x_graphql_retry_max", env)) + 1
    wait_max = _bound(settings, "x_graphql_retry_wait_max_seconds", env)
    wait = min(1.0, wait_max)
    reason = "no answer"
    for attempt in range(attempts):
        if attempt:
            time.sleep(wait)
            wait = min(wait * 2, wait_max)
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + "/", timeout=10):
                return None
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return None
            reason = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            reason = str(getattr(e, "reason", None) or e)
    return f"{reason}, {attempts} attempts"


def warn_offline_fallback(base_url: str, reason: str, run: Any) -> None:
    folder = _run_dir(run)
    detail = redact(reason)
    warnings.warn(
        f"W&B run {getattr(run, 'id', None) or '?'} is logging offline: the server {base_url} "
        f"could not be reached when it started ({detail}) and offline_fallback=True. Everything "
        f"it logs is kept in {folder}; upload it when the server is back: wandb sync {folder}",
        WandbOfflineFallback,
        stacklevel=3,
    )


def _run_dir(run: Any) -> str:
    settings = getattr(run, "settings", None)
    return str(getattr(settings, "sync_dir", None) or getattr(settings, "files_dir", "") or "")


def _is_online(run: Any) -> bool:
    settings = getattr(run, "settings", None)
    mode = getattr(settings, "mode", None)
    return mode in ("online", "shared", "run")


def report_incomplete_upload(
    run: Any,
    elapsed: float,
    *,
    limit: float | None = None,
    share: float | None = None,
    own_s: float | None = None,
) -> str | None:
    """Warn (and return the message) when part of an online run was not uploaded.

    ``elapsed`` is the time spent finishing since the task's code returned; ``own_s`` the time
    the client's own ``finish`` took (default: ``elapsed``). ``limit`` is the ``finish_timeout``
    the run was held to (default: the run's own setting); ``share`` the part of it this writer of
    a shared run had, when the writers split it (see ``_shared_finish.SharedFinish``).
    """
    if not _is_online(run):
        return None
    settings = getattr(run, "settings", None)
    own_limit = getattr(settings, "finish_timeout", None)
    if limit is None:
        limit = own_limit
    # Told by the time spent: the client stops waiting for its upload at its own
    # finish_timeout (this writer's share of the budget, for the writers of a shared run).
    bound = own_limit if isinstance(own_limit, (int, float)) and own_limit else share or limit
    spent = elapsed if own_s is None else own_s
    if not bound or spent < bound * TIMED_OUT_FRACTION:
        return None
    folder = _run_dir(run)
    within = f"finish_timeout={limit:g} s"
    if share is not None:
        within = f"{share:.1f} s (this writer's share of {within})"
    reasons = [
        f"the upload did not finish within {within} after the task's code returned, so "
        "data still queued (the last history rows, summary, console output and files) may not "
        "have been uploaded"
    ]
    base = getattr(settings, "base_url", "the W&B server")
    label = getattr(settings, "x_label", None)
    writer = f" (writer {label})" if label else ""
    message = (
        f"W&B run {getattr(run, 'id', '?')}{writer} on {base} is incomplete ({elapsed:.1f} s "
        f"spent finishing): {'; and '.join(reasons)}. Everything is kept in the local run "
        f"folder {folder}; upload it with: wandb sync --no-skip-online {folder}"
    )
    warnings.warn(redact(message), WandbUploadIncomplete, stacklevel=3)
    return message
