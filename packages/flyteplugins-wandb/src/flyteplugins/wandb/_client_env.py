"""The client's environment on the rare paths: whether it will find an API key (asked after a
failed start), and ``WANDB_BASE_URL`` for its readers that take no settings (``wandb.sweep``,
``wandb.agent``, ``wandb sync``). Imported only where those paths need it."""

from __future__ import annotations

import netrc
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from ._client import FORGE_HOSTS, ClientDefaults, expand_path, forge_host, read_defaults

_server_lock = threading.RLock()


@contextmanager
def client_server(api_url: str | None) -> Iterator[None]:
    """Point the client's environment-only readers (``wandb.sweep``, ``wandb.agent``) at
    ``api_url`` for the block through ``WANDB_BASE_URL``, restored after it (also on failure);
    blocks for different servers wait for each other. Nothing is touched when the client
    already uses ``api_url`` or none is given."""
    url = (api_url or "").rstrip("/")
    if not url or read_defaults().server().api_url == url:
        yield
        return
    with _server_lock:
        before = os.environ.get("WANDB_BASE_URL")
        os.environ["WANDB_BASE_URL"] = url
        try:
            yield
        finally:
            os.environ.pop("WANDB_BASE_URL", None)
            if before is not None:
                os.environ["WANDB_BASE_URL"] = before


def has_api_key(
    api_url: str, settings: Any = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether credentials for ``api_url`` are where the client looks before a login: its
    variables, the ``settings`` given, a netrc file (never reading the key into a message)."""
    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    return bool(getattr(settings, "api_key", None)) or netrc_has_key(api_url, env)


def netrc_has_key(api_url: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a netrc file holds a password for ``api_url``'s host and port (as ``wandb login``
    writes it), or for the W&B host behind a Forge host."""
    env = os.environ if environ is None else environ
    machines = [urlsplit(api_url).netloc]
    if forge := forge_host(api_url):
        machines.append(FORGE_HOSTS[forge])
    for name in [env["NETRC"]] if env.get("NETRC") else ["~/.netrc", "~/_netrc"]:
        try:
            parsed = netrc.netrc(str(expand_path(name, env)))
        except (OSError, netrc.NetrcParseError):  # absent, a folder, unreadable or malformed
            continue
        if any((parsed.authenticators(machine) or ("", "", ""))[2] for machine in machines):
            return True
    return False


def sync_environment(host: str | None, defaults: ClientDefaults) -> dict[str, str]:
    """What ``wandb sync`` needs to reach the server ``host`` its run's task logged for; with no
    ``host``, nothing (the sync task's own environment decides, as the client would)."""
    if not host:
        return {}
    return {"WANDB_BASE_URL": defaults.server(host, source="the run's task").api_url}
