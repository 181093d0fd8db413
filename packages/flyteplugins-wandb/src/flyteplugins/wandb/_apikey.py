"""Whether the wandb client will find an API key, without ever reading the key into a message.

Looked up where the client itself looks: ``WANDB_API_KEY`` (or an identity token file), a key
in the ``wandb.Settings`` passed to the run, credentials this process already logged in with
(``wandb.login``), then the netrc file (``NETRC``, ``~/.netrc``, ``~/_netrc``) entry of the
server's host, which ``wandb login`` writes.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


def _netrc_paths() -> list[Path]:
    if os.environ.get("NETRC"):
        return [Path(os.environ["NETRC"]).expanduser()]
    return [Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()]


def netrc_has_key(base_url: str) -> bool:
    """Whether a netrc file holds a password for ``base_url``'s host."""
    host = urlparse(base_url).hostname or base_url
    for path in _netrc_paths():
        if not path.is_file():
            continue
        try:
            auth = netrc.netrc(str(path)).authenticators(host)
        except (OSError, netrc.NetrcParseError):
            continue
        if auth and auth[2]:
            return True
    return False


def _session_has_key() -> bool:
    """Whether ``wandb.login(key=...)`` already gave this process credentials."""
    try:
        from wandb.sdk.lib.wbauth import authenticate
    except ImportError:
        return False
    return getattr(authenticate, "_session_auth", None) is not None


def has_api_key(base_url: str, settings: Any = None) -> bool:
    """Whether an online run against ``base_url`` will find credentials."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    if settings is not None and getattr(settings, "api_key", None):
        return True
    if _session_has_key():
        return True
    return netrc_has_key(base_url)
