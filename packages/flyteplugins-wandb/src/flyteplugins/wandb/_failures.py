"""What a call does when something fails it: at the start (no key, unreachable server, offline
fallback), at the end (a failed finish, an upload cut by
``finish_timeout``). Imported only on those paths."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from typing import Any, Final

from . import _client, _client_env
from ._resilience import CLIENT_BOUNDS, ONLINE_MODES, env_var, redact

#: A finish that took this part of its ``finish_timeout`` or more ran into it.
TIMED_OUT_FRACTION: Final = 0.95


class WandbFinishFailed(UserWarning):
    """Finishing a run failed; its data stays in the run's local folder."""


class WandbApiKeyMissing(RuntimeError):
    """Online W&B was requested but no API key can be found."""


class WandbServerUnreachable(RuntimeError):
    """``wandb.init`` could not reach the W&B server within the bounded retries."""


class WandbUploadIncomplete(UserWarning):
    """Part of a run's data was not uploaded; it is kept in the run's local folder."""


class WandbOfflineFallback(UserWarning):
    """The server was unreachable at start and ``offline_fallback=True``: the run logs offline."""


def missing_key(mode: str, server: _client.Server, settings: Any = None) -> Exception | None:
    """The error naming both fixes when an online run has no API key anywhere (asked after the
    client refused to start, so a key given to ``wandb.login`` counts; never read into text)."""
    if mode not in ONLINE_MODES or _client_env.has_api_key(server.api_url, settings):
        return None
    return WandbApiKeyMissing(
        f"W&B is online (mode={mode!r}, server {server.api_url}, from {server.source}) but no "
        "API key was found for it (WANDB_API_KEY, `wandb login`, netrc). Either give the "
        "task the key as a secret exposed as WANDB_API_KEY, e.g. "
        'secrets=flyte.Secret(key="wandb_api_key", as_env_var="WANDB_API_KEY"), or log '
        "offline with WANDB_MODE=offline (or wandb_config(mode='offline'))."
    )


def is_server_failure(exc: BaseException) -> bool:
    """Whether a failed online start means the server was unreachable or kept failing, told by
    the client's public error classes (never their text), not a usage error or a refused key."""
    from wandb import errors

    if isinstance(exc, (errors.UsageError, errors.AuthenticationError)):
        return False
    return isinstance(exc, errors.Error)


def unreachable(base_url: str, elapsed: float, exc: BaseException) -> WandbServerUnreachable:
    detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return WandbServerUnreachable(
        f"the W&B server {base_url} could not be reached: wandb.init gave up after "
        f"{elapsed:.0f} s ({detail}). Check the host (wandb_config(host=...) or WANDB_BASE_URL) "
        "and that the task can reach it, or set wandb_config(offline_fallback=True) to log "
        "offline when the server is down and upload later with `wandb sync`."
    )


def _bound(settings: Any, name: str, environ: Mapping[str, str]) -> float:
    """The value the client will use for a bounded setting: its variable, the object, ours."""
    try:
        return float(environ[env_var(name)])
    except (KeyError, ValueError):
        value = getattr(settings, name, None)
        return float(CLIENT_BOUNDS[name] if value is None else value)


def probe(base_url: str, settings: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """``None`` when the server answers HTTP below 500, else why not, after as many attempts
    and waits as the client's GraphQL retries would take (no credentials are sent)."""
    import urllib.error
    import urllib.request

    env = os.environ if environ is None else environ
    attempts = int(_bound(settings, "x_graphql_retry_max", env)) + 1
    wait_max = _bound(settings, "x_graphql_retry_wait_max_seconds", env)
    wait, reason = min(1.0, wait_max), "no answer"
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


def warn(message: str, category: type[Warning], stacklevel: int = 5) -> None:
    warnings.warn(redact(message), category, stacklevel=stacklevel)


def finish_failed(run: Any, error: Exception) -> None:
    folder = str(getattr(getattr(run, "settings", None), "sync_dir", "") or "")
    warn(
        f"finishing W&B run {getattr(run, 'id', '?')} failed ({type(error).__name__}: {error}); "
        f"everything it logged is in {folder}: upload it with `wandb sync {folder}`",
        WandbFinishFailed,
    )


def run_dir(run: Any) -> str:
    settings = getattr(run, "settings", None)
    return str(getattr(settings, "sync_dir", None) or getattr(settings, "files_dir", "") or "")


def warn_offline_fallback(base_url: str, reason: str, run: Any) -> None:
    folder = run_dir(run)
    warnings.warn(
        f"W&B run {getattr(run, 'id', None) or '?'} is logging offline: the server {base_url} "
        f"could not be reached when it started ({redact(reason)}) and offline_fallback=True. "
        f"Everything it logs is kept in {folder}; upload it when the server is back: "
        f"wandb sync {folder}",
        WandbOfflineFallback,
        stacklevel=3,
    )


def report_incomplete_upload(
    run: Any,
    elapsed: float,
    *,
    limit: float | None = None,
    share: float | None = None,
    own_s: float | None = None,
) -> str | None:
    """Warn (and return the message) when an online run's finish ran into its bound.

    ``elapsed``: time spent finishing since the task's code returned; ``own_s``: the client's
    own ``finish`` (default ``elapsed``); ``limit``: the ``finish_timeout`` (default the run's);
    ``share``: this writer's part of it when the writers of a shared run split it.
    """
    settings = getattr(run, "settings", None)
    if getattr(settings, "mode", None) not in ONLINE_MODES:
        return None
    own_limit = getattr(settings, "finish_timeout", None)
    limit = own_limit if limit is None else limit
    # The client stops waiting for its upload at its own finish_timeout.
    bound = own_limit if isinstance(own_limit, (int, float)) and own_limit else share or limit
    if not bound or (elapsed if own_s is None else own_s) < bound * TIMED_OUT_FRACTION:
        return None
    folder = run_dir(run)
    within = f"finish_timeout={limit:g} s"
    if share is not None:
        within = f"{share:.1f} s (this writer's share of {within})"
    label = getattr(settings, "x_label", None)
    message = (
        f"W&B run {getattr(run, 'id', '?')}{f' (writer {label})' if label else ''} on "
        f"{getattr(settings, 'base_url', 'the W&B server')} is incomplete ({elapsed:.1f} s "
        f"spent finishing): the upload did not finish within {within} after the task's code "
        "returned, so data still queued (the last history rows, summary, console output and "
        "files) may not have been uploaded. Everything is kept in the local run folder "
        f"{folder}; upload it with: wandb sync --no-skip-online {folder}"
    )
    warnings.warn(redact(message), WandbUploadIncomplete, stacklevel=3)
    return message
