"""The installed wandb client's rules without importing it (links render where ``import wandb``
should not be paid): server, web app, page URLs, defaults. Each mirrors the client's function
named in its docstring; ``tests-integration/test_client_rules.py`` compares them."""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final, NamedTuple
from urllib.parse import quote, urlsplit

from flyteplugins.wandb_core import split_templates

# ``wandb.sdk.lib.urls``: the default server, the CoreWeave Forge hosts (with the W&B API host
# behind each) and their paths.
DEFAULT_BASE_URL: Final = "https://api.forge.coreweave.com"
FORGE_HOSTS: Final[Mapping[str, str]] = {
    "forge.coreweave.com": "api.wandb.ai",
    "qa.forge.coreweave.com": "api.qa.wandb.ai",
}
FORGE_APP_PATH: Final = "/wandb"
FORGE_API_PATH: Final = "/api/wandb"
DEFAULT_PROJECT: Final = "uncategorized"  # where the server files a run that names no project
# The characters a page's id keeps unquoted (``Settings.run_url``, ``Settings.sweep_url``).
_SAFE: Final = {"runs": "=+&$@", "groups": "", "sweeps": "/"}


class Server(NamedTuple):
    """A W&B server: its API and web app URLs, and where it was taken from (for messages)."""

    api_url: str
    app_url: str
    source: str


class ClientDefaults(NamedTuple):
    """What the client takes from its variables and settings files when a run names nothing
    (:func:`read_defaults`); the resolver never reads the environment itself."""

    base_url: str | None = None
    base_url_source: str = "the client's default"
    app_url: str | None = None
    entity: str | None = None
    project: str | None = None

    def server(self, host: str | None = None, *, source: str = "host=") -> Server:
        """The server a run uses: ``host`` when given, else these defaults."""
        api = api_url_for_host(host or self.base_url or DEFAULT_BASE_URL)
        return Server(
            api, self.app_url or api_to_app_url(api), source if host else self.base_url_source
        )


def forge_host(url: str) -> str | None:
    """The Forge host serving ``url``'s deployment, if any (``urls.forge_host``)."""
    hostname = urlsplit(url).hostname
    return next((f for f, api in FORGE_HOSTS.items() if hostname in (f, f"api.{f}", api)), None)


def api_to_app_url(api_url: str) -> str:
    """The web app URL of an API URL (``wandb.util.api_to_app_url``)."""
    if host := forge_host(api_url):
        return f"https://{host}{FORGE_APP_PATH}"
    if "://api." not in api_url:
        return api_url
    cloud = "://api.wandb." in api_url and "://api.wandb.test" not in api_url
    return api_url.replace("://api.", "://" if cloud else "://app.").strip("/")


def api_url_for_host(host: str) -> str:
    """The client's ``base_url`` for a ``host`` naming the API or the web app (``https`` unless
    given): W&B's cloud app and a Forge host (also with its app or API path) map to their API
    hosts, as the client's normalisation does; any other host is a self-hosted server."""
    text = host.strip()
    text = (text if "://" in text else "https://" + text).rstrip("/")
    parts = urlsplit(text)
    hostname = parts.hostname or ""
    if parts.port is None and hostname in FORGE_HOSTS:
        if parts.path.rstrip("/") in ("", FORGE_APP_PATH, FORGE_API_PATH):
            return f"https://api.{hostname}"
        raise ValueError(
            f"host={host!r} is a CoreWeave Forge address but not its app or API: use "
            f"https://{hostname}{FORGE_APP_PATH} or https://api.{hostname}"
        )
    for api in (f"api.{hostname}", f"api.{hostname.removeprefix('app.')}"):  # a W&B cloud app
        if parts.port is None and api in FORGE_HOSTS.values():
            return f"https://{api}"
    return text


def _quote(text: str, safe: str) -> str:
    """Percent-encode as the client does, keeping Flyte link templates (``{{.actionName}}``)."""
    parts = split_templates(text)
    return "".join(p if i % 2 else quote(p, safe=safe) for i, p in enumerate(parts))


def page_url(
    app_url: str, entity: str | None, project: str | None, kind: str = "", page_id: str = ""
) -> str | None:
    """``Settings.project_url``; with ``kind`` (``runs``, ``groups``, ``sweeps``) the page of
    ``page_id`` (``Settings.run_url``, ``sweep_url``) or, without one, the list. ``None`` when
    the entity is unknown: no URL can name the page."""
    if not entity:
        return None
    url = f"{app_url.rstrip('/')}/{_quote(entity, '/')}/{_quote(project or DEFAULT_PROJECT, '/')}"
    if kind:
        url += f"/{kind}" + (f"/{_quote(page_id, _SAFE[kind])}" if page_id else "")
    return url


def expand_path(path: str, environ: Mapping[str, str]) -> Path:
    """``~`` expanded with ``environ``'s ``HOME`` (the environment the run will have)."""
    if path.startswith("~") and environ.get("HOME"):
        return Path(environ["HOME"] + path[1:])
    return Path(path).expanduser()


def read_defaults(
    environ: Mapping[str, str] | None = None, cwd: str | None = None
) -> ClientDefaults:
    """The server, app URL, entity and project the client takes when a run names none: its
    variables, else its settings files."""
    env = os.environ if environ is None else environ
    # Lowest precedence first: the global file, then the one of the run folder's root ($WANDB_DIR
    # or the working directory), in .wandb/ when that exists.
    root = expand_path(env.get("WANDB_DIR") or cwd or os.getcwd(), env)
    files = [
        expand_path(env.get("WANDB_CONFIG_DIR") or "~/.config/wandb", env) / "settings",
        root / (".wandb" if (root / ".wandb").exists() else "wandb") / "settings",
    ]
    found: dict[str, tuple[str, str]] = {}
    for path in files:
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
            items = parser.items("default")
        except configparser.Error:  # malformed, or no [default] section
            continue
        found.update((k, (v, f"the settings file {path}")) for k, v in items if v)
    for key in ("base_url", "entity", "project"):  # WANDB_BASE_URL, WANDB_ENTITY, WANDB_PROJECT
        if env.get(var := "WANDB_" + key.upper()):
            found[key] = (env[var], var)
    if "base_url" in found:
        check_base_url(*found["base_url"])
    default = (None, "the client's default")
    base, entity, project = (found.get(k, default) for k in ("base_url", "entity", "project"))
    app_url = (env.get("WANDB_APP_URL") or "").rstrip("/") or None
    return ClientDefaults(base[0], base[1], app_url, entity[0], project[0])


def check_base_url(value: str, source: str) -> None:
    """Refuse a server URL the client cannot use, naming where it came from and its value."""
    parts = urlsplit(value.strip())
    try:
        parts.port  # noqa: B018 (raises for a port that is not 0-65535)
        problem = None if parts.hostname else "it names no host"
    except ValueError:
        problem = "its port is not a number from 0 to 65535"
    if parts.scheme not in ("http", "https"):
        problem = "it needs http:// or https://"
    if problem:
        where = f"{source}={value!r}" if source.isupper() else f"base_url={value!r} in {source}"
        raise ValueError(
            f"{where} is not a W&B server URL: {problem} (e.g. https://wandb.example.com or "
            "http://127.0.0.1:8080)"
        )
