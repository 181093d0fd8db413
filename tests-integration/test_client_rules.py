"""The plugin's copy of the client's rules (``flyteplugins.wandb._client``) against the client.

Hosts, web-app URLs, page URLs, settings files and API-key lookup are compared with the installed
wandb client's own functions, over many generated inputs, so that a wandb release that changes a
rule fails here instead of sending users to dead links or refusing their login.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _plugin_helpers import by_id, reset_wandb, run_local
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import DUMMY_API_KEY, WandbTestServer

from flyteplugins.wandb import _client, _client_env, get_wandb_run, wandb_init

# -- hosts and app URLs ---------------------------------------------------------------------

_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_known_hosts = st.sampled_from(
    [
        "api.forge.coreweave.com",
        "forge.coreweave.com",
        "qa.forge.coreweave.com",
        "api.qa.forge.coreweave.com",
        "api.wandb.ai",
        "api.qa.wandb.ai",
        "api.wandb.test",
        "127.0.0.1",
        "localhost",
    ]
)
_hosts = st.one_of(
    _known_hosts,
    st.builds(lambda a, b: f"{a}.{b}.io", _labels, _labels),
    st.builds(lambda a, b: f"api.{a}.{b}", _labels, _labels),
    st.builds(lambda a: f"api.wandb.{a}", _labels),
)
_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["https", "http"]),
    _hosts,
    st.sampled_from(["", ":8080", ":443", ":9123"]),
    st.sampled_from(["", "/", "/wandb"]),
)


def test_constants_are_the_clients() -> None:
    from wandb.sdk.lib import urls

    assert _client.DEFAULT_BASE_URL == urls.DEFAULT_BASE_URL
    assert dict(_client.FORGE_HOSTS) == urls.FORGE_HOSTS
    assert _client.FORGE_APP_PATH == urls.FORGE_APP_PATH
    assert _client.FORGE_API_PATH == urls.FORGE_API_PATH


@settings(max_examples=400)
@given(_urls)
def test_app_url_mapping_is_the_clients(url: str) -> None:
    import wandb
    from wandb.sdk.lib import urls

    assert _client.api_to_app_url(url) == wandb.util.api_to_app_url(url)
    assert _client.forge_host(url) == urls.forge_host(url)


@settings(max_examples=300)
@given(_urls)
def test_server_normalisation_agrees_with_the_client(url: str) -> None:
    """Every base URL the client accepts normalises to what the client itself uses."""
    import wandb

    try:
        expected = wandb.Settings(base_url=url).base_url
    except Exception:
        return  # the client refuses it (wandb.ai app URLs, a Forge host without its API path)
    assert _client.api_url_for_host(url) == expected


@pytest.mark.parametrize(
    ("host", "api"),
    [
        ("wandb.ai", "https://api.wandb.ai"),
        ("https://wandb.ai/", "https://api.wandb.ai"),
        ("forge.coreweave.com", "https://api.forge.coreweave.com"),
        ("https://forge.coreweave.com/wandb", "https://api.forge.coreweave.com"),
        ("https://forge.coreweave.com/api/wandb", "https://api.forge.coreweave.com"),
        ("127.0.0.1:8080", "https://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ],
)
def test_app_hosts_map_to_a_server_the_client_accepts(host: str, api: str) -> None:
    import wandb

    assert _client.api_url_for_host(host) == api
    assert wandb.Settings(base_url=api).base_url == api


_segment = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_characters="/\\#?%:\x00", exclude_categories=["Cs"]
    ),
    min_size=1,
    max_size=12,
)
_run_id = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.=+&$@~", min_size=1, max_size=20
)


@settings(max_examples=300)
@given(st.sampled_from(["https://api.forge.coreweave.com", "http://127.0.0.1:9000",
                        "https://api.wandb.ai", "https://wandb.acme.io"]),
       _segment, _segment, _run_id)  # fmt: skip
def test_page_urls_are_the_clients(base: str, entity: str, project: str, run_id: str) -> None:
    import wandb

    env = {k: v for k, v in os.environ.items() if k != "WANDB_APP_URL"}
    client = wandb.Settings(base_url=base, entity=entity, project=project, run_id=run_id)
    client.sweep_id = run_id
    app = _client.api_to_app_url(base)
    assert app == client.app_url
    assert _client.page_url(app, entity, project) == client.project_url
    assert _client.page_url(app, entity, project, "runs", run_id) == client.run_url
    assert _client.page_url(app, entity, project, "sweeps", run_id) == client.sweep_url
    assert "WANDB_APP_URL" not in env


def test_wandb_app_url_overrides_the_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    monkeypatch.setenv("WANDB_APP_URL", "https://ui.example.com/")
    defaults = _client.read_defaults()
    assert defaults.server("https://api.example.com").app_url == "https://ui.example.com"
    assert wandb.util.app_url("https://api.example.com") == "https://ui.example.com"


# -- settings files and environment ---------------------------------------------------------


def _client_view(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """What the client itself loads (the steps of ``wandb.setup``), in a fresh process."""
    code = (
        "import json, os, pathlib, wandb\n"
        "s = wandb.Settings()\n"
        "d = os.environ.get('WANDB_CONFIG_DIR')\n"
        "s.settings_system = str(pathlib.Path(d) / 'settings') if d else "
        "str(pathlib.Path('~', '.config', 'wandb', 'settings').expanduser())\n"
        "s.update_from_system_settings()\n"
        "s.update_from_env_vars(dict(os.environ))\n"
        "print(json.dumps({'base_url': s.base_url, 'entity': s.entity, 'project': s.project,"
        " 'app_url': s.app_url}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    import json

    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("global_file", "local_file", "env"),
    [
        ({}, {}, {}),
        ({"base_url": "http://127.0.0.1:8123", "entity": "g"}, {}, {}),
        ({"base_url": "http://127.0.0.1:8123"}, {"base_url": "http://127.0.0.1:9999"}, {}),
        ({"entity": "g", "project": "gp"}, {"project": "lp"}, {"WANDB_ENTITY": "e"}),
        ({"base_url": "http://127.0.0.1:8123"}, {}, {"WANDB_BASE_URL": "https://x.example.com"}),
        ({}, {"entity": "l"}, {"WANDB_PROJECT": "ep"}),
    ],
)
def test_defaults_are_what_the_client_loads(
    tmp_path: Path,
    global_file: dict[str, str],
    local_file: dict[str, str],
    env: dict[str, str],
) -> None:
    home = tmp_path / "home"
    config = home / ".config" / "wandb"
    work = tmp_path / "work"
    for folder, values in ((config, global_file), (work / "wandb", local_file)):
        folder.mkdir(parents=True, exist_ok=True)
        if values:
            body = "".join(f"{k} = {v}\n" for k, v in values.items())
            (folder / "settings").write_text("[default]\n" + body)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WANDB_") and k not in ("HOME", "NETRC")
    }
    full_env = {**base, "HOME": str(home), "WANDB_SILENT": "true", **env}
    client = _client_view(full_env, work)
    ours = _client.read_defaults(full_env, cwd=str(work))
    server = ours.server()
    assert server.api_url == client["base_url"]
    assert server.app_url == client["app_url"]
    assert ours.entity == client["entity"]
    assert ours.project == client["project"]


# -- API keys -------------------------------------------------------------------------------


@pytest.fixture
def clean_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with no key, no netrc, no settings; nothing of the client's set in the environment."""
    home = tmp_path / "home"
    home.mkdir()
    for var in list(os.environ):
        if var.startswith("WANDB_") or var == "NETRC":
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb.sdk.lib.wbauth.authenticate as auth

    monkeypatch.setattr(auth, "_session_auth", None)
    reset_wandb()
    return home


def _wandb_login(home: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), WANDB_SILENT="true")
    wandb_cli = Path(sys.executable).with_name("wandb")
    subprocess.run([str(wandb_cli), "login", *args], env=env, check=True, capture_output=True)


def test_netrc_entry_keeps_the_port_as_wandb_login_writes_it(clean_home: Path) -> None:
    (clean_home / ".netrc").write_text(
        f"machine 127.0.0.1:8123\n  login user\n  password {DUMMY_API_KEY}\n"
    )
    (clean_home / ".netrc").chmod(0o600)
    assert _client_env.has_api_key("http://127.0.0.1:8123")
    assert _client_env.netrc_has_key("http://127.0.0.1:8123")
    assert not _client_env.has_api_key("http://127.0.0.1:9999")
    assert not _client_env.netrc_has_key("http://127.0.0.1:9999")


def test_netrc_entry_of_the_forge_host(clean_home: Path) -> None:
    (clean_home / ".netrc").write_text(
        f"machine api.forge.coreweave.com\n  login user\n  password {'k' * 40}\n"
    )
    (clean_home / ".netrc").chmod(0o600)
    assert _client_env.has_api_key(_client.DEFAULT_BASE_URL)
    assert _client_env.netrc_has_key(_client.DEFAULT_BASE_URL)
    assert not _client_env.has_api_key("https://api.wandb.ai")


def test_netrc_entry_of_the_wandb_host_behind_forge(clean_home: Path) -> None:
    (clean_home / ".netrc").write_text(
        f"machine api.wandb.ai\n  login user\n  password {'k' * 40}\n"
    )
    (clean_home / ".netrc").chmod(0o600)
    assert _client_env.has_api_key(_client.DEFAULT_BASE_URL)
    assert _client_env.netrc_has_key(_client.DEFAULT_BASE_URL)


env = __import__("flyte").TaskEnvironment(name="client_rules")


@wandb_init(project="logged-in", entity="team")
@env.task
def logged_in_task() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"x": 1})
    return str(run.id)


@pytest.mark.online
def test_online_run_with_only_what_wandb_login_host_wrote(
    clean_home: Path, wandb_server: WandbTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`wandb login --host URL KEY` writes the server to the settings file and the key to netrc
    under host:port; a decorated task then runs online with nothing else configured."""
    if not wandb_server.running:
        wandb_server.start()
    _wandb_login(clean_home, "--host", wandb_server.url, DUMMY_API_KEY)
    netrc_text = (clean_home / ".netrc").read_text()
    assert f"127.0.0.1:{wandb_server.port}" in netrc_text
    settings_file = clean_home / ".config" / "wandb" / "settings"
    assert wandb_server.url in settings_file.read_text()

    monkeypatch.chdir(clean_home)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    defaults = _client.read_defaults()
    assert defaults.server().api_url == wandb_server.url
    assert _client_env.has_api_key(wandb_server.url)
    try:
        run_id = run_local(logged_in_task, name="login-host")
    finally:
        reset_wandb()
    assert run_id in {r["name"] for r in wandb_server.runs(project="logged-in")}


def test_offline_records_the_default_project(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that names no project lands in the client's default, which links assume."""
    monkeypatch.delenv("WANDB_PROJECT", raising=False)

    @wandb_init
    def nameless() -> str:
        run = get_wandb_run()
        assert run is not None
        return str(run.project)

    assert nameless() == _client.DEFAULT_PROJECT
    reset_wandb()
    assert by_id(wandb_offline)


@wandb_init(project="no-entity")
@env.task
def no_entity_task() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.url)


@pytest.mark.online
def test_a_task_whose_link_could_not_name_the_entity_says_its_url(
    wandb_online: WandbTestServer,
) -> None:
    """No entity anywhere at submit time: the link is the app's start page, and the run, when it
    starts, warns with its real page (with the entity the server gave it)."""
    from flyteplugins.wandb import WandbLinkIncomplete

    with pytest.warns(WandbLinkIncomplete) as seen:
        url = run_local(no_entity_task, name="no-entity")
    reset_wandb()
    assert f"/{wandb_online.entity}/no-entity/runs/" in url
    assert any(url in str(w.message) for w in seen)
