"""Bounds on a run's networking: the client's retries and the upload after the task's code.

Without them the wandb client retries a dead server for many minutes, holding the task's pod.
Settings the user chose (on ``wandb.Settings`` or as ``WANDB_*`` variables) are never overridden.
What happens when a bound is hit lives in ``_failures`` (imported only then).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._resolve import own_settings
from ._settings import check_finish_timeout, check_offline_fallback

#: The client's modes that talk to a server (``run`` is the client's old name for online).
ONLINE_MODES: Final = ("online", "shared", "run")

DEFAULT_FINISH_TIMEOUT: Final = 30.0
"""Seconds a run may spend uploading after the task's code returned (``finish_timeout``)."""

# Client settings bounded unless the user set them (the client's default: no bound). GraphQL:
# ~20 s of retries; file_stream rides out ~90 s of outage during a long run; file uploads.
CLIENT_BOUNDS: Final[Mapping[str, float]] = {
    "x_graphql_retry_max": 4,
    "x_graphql_retry_wait_max_seconds": 8.0,
    "x_file_stream_retry_max": 7,
    "x_file_stream_retry_wait_max_seconds": 30.0,
    "x_file_transfer_retry_max": 4,
    "x_file_transfer_retry_wait_max_seconds": 10.0,
    "init_timeout": 60.0,
}


@dataclass(frozen=True)
class Resilience:
    """The plugin's own settings, never passed to ``wandb.init``."""

    finish_timeout: float | None = None
    offline_fallback: bool = False


def pop_plugin_settings(kwargs: dict[str, Any]) -> Resilience:
    """Take ``finish_timeout`` and ``offline_fallback`` out of the ``wandb.init`` keywords."""
    timeout = kwargs.pop("finish_timeout", None)
    fallback = kwargs.pop("offline_fallback", None)
    check_finish_timeout(timeout)
    check_offline_fallback(fallback)
    return Resilience(None if timeout is None else float(timeout), bool(fallback))


def env_var(setting: str) -> str:
    """The variable the client reads ``setting`` from (``x_foo`` -> ``WANDB__FOO``)."""
    return "WANDB__" + setting[2:].upper() if setting[:2] == "x_" else "WANDB_" + setting.upper()


def finish_budget(
    plugin_timeout: Any, settings: Any = None, environ: Mapping[str, str] | None = None
) -> float:
    """Seconds a run may spend finishing (0: no limit): the plugin's ``finish_timeout``, else the
    user's (``settings`` or ``WANDB_FINISH_TIMEOUT``), else :data:`DEFAULT_FINISH_TIMEOUT`."""
    if plugin_timeout is not None:
        check_finish_timeout(plugin_timeout)
        return float(plugin_timeout)
    own = own_settings(settings).get("finish_timeout")
    if own is not None:
        return float(own)
    name = env_var("finish_timeout")
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return DEFAULT_FINISH_TIMEOUT
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number of seconds (e.g. 30)") from None


def apply_bounds(
    settings: Any, resilience: Resilience, environ: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Set every bound the user left unset on ``settings``; return what was set."""
    env = os.environ if environ is None else environ
    chosen = set(own_settings(settings))
    applied = {n: v for n, v in CLIENT_BOUNDS.items() if n not in chosen and env_var(n) not in env}
    user_finish = "finish_timeout" in chosen or env_var("finish_timeout") in env
    if resilience.finish_timeout is not None or not user_finish:
        applied["finish_timeout"] = finish_budget(resilience.finish_timeout, settings, env)
    for name, value in applied.items():
        setattr(settings, name, value)
    return applied


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with the API key (if any appears in it) replaced by ``***``."""
    key = (os.environ if environ is None else environ).get("WANDB_API_KEY")
    return text.replace(key, "***") if key and len(key) >= 8 else text
