"""The installed wandb client's rules, in one place: which server, which web app, which key.

Links are rendered at submit time, in a process that should not pay for ``import wandb``
(about half a second), so the rules are written here as plain functions over strings and files.
Each one mirrors a function of the client (named in its docstring), and
``tests-integration/test_client_rules.py`` compares them with the installed client over many
inputs: a wandb release that changes a rule fails a test instead of producing a wrong link.

* The server (API URL): ``host=`` of the decorator or ``wandb_config``, else ``WANDB_BASE_URL``,
  else the client's settings files (``wandb login --host`` writes ``base_url`` to the global
  one), else the client's default (CoreWeave Forge since wandb 0.31).
* The web app URL of a server: ``WANDB_APP_URL``, else the client's API-to-app mapping.
* The entity and project the client falls back to: ``WANDB_ENTITY`` / ``WANDB_PROJECT``, else the
  settings files.
* Whether an online run will find an API key for that server: asked of the client itself when it
  is importable (environment, ``wandb.login`` session, netrc entry of the server's host *and
  port*, settings), else looked up the same way by hand.
"""

from __future__ import annotations

import configparser
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

DEFAULT_BASE_URL: Final = "https://api.forge.coreweave.com"
"""The client's default server (``wandb.sdk.lib.urls.DEFAULT_BASE_URL``)."""

FORGE_HOSTS: Final[Mapping[str, str]] = {
    "forge.coreweave.com": "api.wandb.ai",
    "qa.forge.coreweave.com": "api.qa.wandb.ai",
}
"""CoreWeave Forge hosts and the W&B API host behind each (``wandb.sdk.lib.urls.FORGE_HOSTS``)."""

FORGE_APP_PATH: Final = "/wandb"
FORGE_API_PATH: Final = "/api/wandb"

DEFAULT_PROJECT: Final = "uncategorized"
"""Where the server files a run that names no project."""

# The client quotes run ids keeping these characters (``Settings.run_url``).
_RUN_ID_SAFE: Final = "=+&$@"


@dataclass(frozen=True)
class Server:
    """A W&B server: the API URL the client talks to, the web app URL its pages live under."""

    api_url: str
    app_url: str
    source: str
    """Where the server was taken from, for messages (``host=``, ``WANDB_BASE_URL``, a file)."""


@dataclass(frozen=True)
class ClientDefaults:
    """What the client takes from the environment and its settings files when a run names nothing.

    Read once per decision by :func:`read_defaults`; the resolver uses it and never reads the
    environment itself.
    """

    base_url: str | None = None
    base_url_source: str = "the client's default"
    app_url: str | None = None
    entity: str | None = None
    project: str | None = None

    def server(self, host: str | None = None, *, source: str = "host=") -> Server:
        """The server a run uses: ``host`` when given, else these defaults."""
        if host:
            api = api_url_for_host(host)
            where = source
        elif self.base_url:
            api = api_url_for_host(self.base_url)
            where = self.base_url_source
        else:
            api = DEFAULT_BASE_URL
            where = self.base_url_source
        return Server(api_url=api, app_url=self.app_url or api_to_app_url(api), source=where)


# --------------------------------------------------------------------------------------------
# Hosts and URLs


def _with_scheme(text: str) -> str:
    text = text.strip()
    return text if "://" in text else "https://" + text


def forge_host(url: str) -> str | None:
    """The Forge host serving ``url``'s deployment, if any (``wandb.sdk.lib.urls.forge_host``)."""
    hostname = urlsplit(url).hostname
    for forge, api in FORGE_HOSTS.items():
        if hostname in (forge, f"api.{forge}", api):
            return forge
    return None


def api_to_app_url(api_url: str) -> str:
    """The web app URL of an API URL (``wandb.util.api_to_app_url``)."""
    if host := forge_host(api_url):
        return f"https://{host}{FORGE_APP_PATH}"
    if "://api.wandb.test" in api_url:
        return api_url.replace("://api.", "://app.").strip("/")
    if "://api.wandb." in api_url:
        return api_url.replace("://api.", "://").strip("/")
    if "://api." in api_url:
        return api_url.replace("://api.", "://app.").strip("/")
    return api_url


def api_url_for_host(host: str) -> str:
    """The client's ``base_url`` for a ``host`` setting, which may name the API or the web app.

    W&B's cloud app (``wandb.ai``, ``app.wandb.ai``) and a Forge host (``forge.coreweave.com``,
    also with its app or API-proxy path) map to their API hosts, as the client's own
    normalisation does for the Forge proxy; any other host is taken as a self-hosted server,
    which answers both on one address. The scheme defaults to ``https``.
    """
    text = _with_scheme(host).rstrip("/")
    parts = urlsplit(text)
    hostname = parts.hostname or ""
    if hostname in FORGE_HOSTS and parts.port is None:
        if parts.path.rstrip("/") in ("", FORGE_APP_PATH, FORGE_API_PATH):
            return f"https://api.{hostname}"
        raise ValueError(
            f"host={host!r} is a CoreWeave Forge address but not its app or API: use "
            f"https://{hostname}{FORGE_APP_PATH} or https://api.{hostname}"
        )
    if parts.port is None:
        # A W&B cloud app host (the API host behind a Forge host, without ``api.``, or with
        # ``app.`` instead): its API host, as the client's table names it.
        for candidate in (f"api.{hostname}", f"api.{hostname.removeprefix('app.')}"):
            if candidate in FORGE_HOSTS.values():
                return f"https://{candidate}"
    return text


def project_url(app_url: str, entity: str, project: str) -> str:
    """``Settings.project_url``'s shape: ``{app}/{entity}/{project}``."""
    return f"{app_url.rstrip('/')}/{_quote(entity, '/')}/{_quote(project, '/')}"


def _quote(text: str, safe: str) -> str:
    """Percent-encode as the client does, keeping Flyte link templates (``{{.actionName}}``)."""
    from flyteplugins.wandb_core import split_templates

    parts = split_templates(text)
    return "".join(p if i % 2 else quote(p, safe=safe) for i, p in enumerate(parts))


def run_url(app_url: str, entity: str, project: str, run_id: str) -> str:
    """``Settings.run_url``: the page of one run."""
    return f"{project_url(app_url, entity, project)}/runs/{_quote(run_id, _RUN_ID_SAFE)}"


def group_url(app_url: str, entity: str, project: str, group: str) -> str:
    """The page of a group of runs (the W&B app's ``/groups/{group}``)."""
    return f"{project_url(app_url, entity, project)}/groups/{_quote(group, '')}"


def sweep_url(app_url: str, entity: str, project: str, sweep_id: str) -> str:
    """``Settings.sweep_url``: the page of one sweep."""
    return f"{project_url(app_url, entity, project)}/sweeps/{_quote(sweep_id, '/')}"


def sweeps_page_url(app_url: str, entity: str, project: str) -> str:
    """The project's list of sweeps."""
    return f"{project_url(app_url, entity, project)}/sweeps"


# --------------------------------------------------------------------------------------------
# Settings files and the environment


def settings_files(environ: Mapping[str, str], cwd: str | None = None) -> list[Path]:
    """The client's settings files, lowest precedence first (global, then the workspace's).

    Global: ``$WANDB_CONFIG_DIR/settings``, else ``~/.config/wandb/settings``. Workspace:
    ``settings`` in the run folder root (``$WANDB_DIR`` or the working directory), in ``.wandb/``
    when that exists, else ``wandb/``.
    """
    config_dir = environ.get("WANDB_CONFIG_DIR")
    if config_dir:
        global_file = _expand(config_dir, environ) / "settings"
    else:
        global_file = _expand("~/.config/wandb/settings", environ)
    root = _expand(environ.get("WANDB_DIR") or cwd or os.getcwd(), environ)
    folder = ".wandb" if (root / ".wandb").exists() else "wandb"
    return [global_file, root / folder / "settings"]


def _expand(path: str, environ: Mapping[str, str]) -> Path:
    """``~`` expanded with ``environ``'s ``HOME`` (the environment the run will have)."""
    if path.startswith("~") and environ.get("HOME"):
        return Path(environ["HOME"] + path[1:])
    return Path(path).expanduser()


def _read_settings_file(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    try:
        if not path.is_file():
            return {}
        parser.read(path)
        return dict(parser.items("default"))
    except (OSError, configparser.Error):
        return {}


def read_defaults(
    environ: Mapping[str, str] | None = None, cwd: str | None = None
) -> ClientDefaults:
    """What the client would take for server, app URL, entity and project if a run named none."""
    env = os.environ if environ is None else environ
    values: dict[str, tuple[str, str]] = {}
    for path in settings_files(env, cwd):
        for key, value in _read_settings_file(path).items():
            if value:
                values[key] = (value, f"the settings file {path}")
    for key, var in (("base_url", "WANDB_BASE_URL"), ("entity", "WANDB_ENTITY")):
        if env.get(var):
            values[key] = (env[var], var)
    if env.get("WANDB_PROJECT"):
        values["project"] = (env["WANDB_PROJECT"], "WANDB_PROJECT")
    base = values.get("base_url")
    if base is not None:
        check_base_url(*base)
    return ClientDefaults(
        base_url=base[0] if base else None,
        base_url_source=base[1] if base else "the client's default",
        app_url=(env.get("WANDB_APP_URL") or "").rstrip("/") or None,
        entity=values["entity"][0] if "entity" in values else None,
        project=values["project"][0] if "project" in values else None,
    )


def check_base_url(value: str, source: str) -> None:
    """Refuse a server URL the client cannot use, naming where it came from and its value."""
    parts = urlsplit(value.strip())
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "it needs http:// or https://"
    elif not parts.hostname:
        problem = "it names no host"
    else:
        try:
            parts.port  # noqa: B018 (raises for a port that is not 0-65535)
        except ValueError:
            problem = "its port is not a number from 0 to 65535"
    if problem is not None:
        where = f"{source}={value!r}" if source.isupper() else f"base_url={value!r} in {source}"
        raise ValueError(
            f"{where} is not a W&B server URL: {problem} (e.g. https://wandb.example.com or "
            "http://127.0.0.1:8080)"
        )


_server_lock = threading.RLock()


@contextmanager
def client_server(api_url: str | None) -> Iterator[None]:
    """Make the client's environment-only readers use ``api_url`` for the block.

    ``wandb.sweep`` and ``wandb.agent`` take no settings and read their server from
    ``WANDB_BASE_URL`` only. The variable is set for the block and restored when it ends (also on
    failure); blocks for different servers wait for each other rather than mix them. With no
    ``api_url``, or when the client already uses it, nothing is touched.
    """
    if not api_url or read_defaults().server().api_url == api_url.rstrip("/"):
        yield
        return
    with _server_lock:
        before = os.environ.get("WANDB_BASE_URL")
        os.environ["WANDB_BASE_URL"] = api_url.rstrip("/")
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("WANDB_BASE_URL", None)
            else:
                os.environ["WANDB_BASE_URL"] = before


# --------------------------------------------------------------------------------------------
# API keys (never read into a message: only whether one exists)


def has_api_key(
    api_url: str, settings: Any = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether credentials for ``api_url`` are where the client looks before a login: its
    variables, the ``settings`` given, a netrc file. (A key given to ``wandb.login(key=...)``
    in this process and not saved is not seen here: the check runs after the client itself
    refused to start, see ``_backend.init_run``.)"""
    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    if settings is not None and getattr(settings, "api_key", None):
        return True
    return netrc_has_key(api_url, env)


def netrc_has_key(api_url: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a netrc file holds a password for ``api_url``'s host and port (as ``wandb login``
    writes it), or for the W&B host behind a Forge host."""
    import netrc

    env = os.environ if environ is None else environ
    paths = (
        [_expand(env["NETRC"], env)]
        if env.get("NETRC")
        else [_expand("~/.netrc", env), _expand("~/_netrc", env)]
    )
    machines = [urlsplit(api_url).netloc]
    if forge := forge_host(api_url):
        machines.append(FORGE_HOSTS[forge])
    for path in paths:
        if not path.is_file():
            continue
        try:
            parsed = netrc.netrc(str(path))
        except (OSError, netrc.NetrcParseError):
            continue
        for machine in machines:
            auth = parsed.authenticators(machine)
            if auth and auth[2]:
                return True
    return False
