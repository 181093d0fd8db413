"""The resolver: table-driven cases and the property that links and runs are one decision."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flyteplugins.wandb._client import ClientDefaults
from flyteplugins.wandb._pages import link_pages, sweep_link
from flyteplugins.wandb._resolve import (
    Identity,
    Parent,
    Trial,
    choose_parent,
    merge_settings,
    resolve,
)
from flyteplugins.wandb_core import Topology

FORGE = ClientDefaults()
SELF_HOSTED = ClientDefaults(base_url="http://127.0.0.1:8080", base_url_source="WANDB_BASE_URL")
IDENT = Identity(run_name="r1", action_name="a0", project="fp", domain="dev", attempt=2)


def test_merge_decorator_over_context_config_merged() -> None:
    merged = merge_settings(
        {"project": "ctx", "config": {"a": 1, "b": 1}, "tags": ["x"]},
        {"project": "dec", "config": {"b": 2}, "entity": None},
    )
    assert merged == {"project": "dec", "config": {"a": 1, "b": 2}, "tags": ["x"]}


@pytest.mark.parametrize(
    ("defaults", "settings", "api", "app"),
    [
        (FORGE, {}, "https://api.forge.coreweave.com", "https://forge.coreweave.com/wandb"),
        (SELF_HOSTED, {}, "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        (FORGE, {"host": "wandb.ai"}, "https://api.wandb.ai", "https://forge.coreweave.com/wandb"),
        (SELF_HOSTED, {"host": "https://w.acme.io"}, "https://w.acme.io", "https://w.acme.io"),
        (FORGE, {"settings": {"base_url": "http://h:1"}}, "http://h:1", "http://h:1"),
        (
            ClientDefaults(app_url="https://ui.acme.io"),
            {"host": "https://api.acme.io"},
            "https://api.acme.io",
            "https://ui.acme.io",
        ),
    ],
)
def test_server(defaults: ClientDefaults, settings: dict[str, Any], api: str, app: str) -> None:
    r = resolve(settings, kind="task", defaults=defaults, identity=IDENT)
    assert (r.server.api_url, r.server.app_url) == (api, app)
    assert r.settings["base_url"] == api


@pytest.mark.parametrize(
    ("case", "kw", "run_id", "resume", "joins"),
    [
        ("task", {"kind": "task", "identity": IDENT}, "r1-a0", "allow", False),
        ("task, user id", {"kind": "task", "identity": IDENT, "user_id": "mine"},
         "mine", "allow", False),
        ("function outside Flyte", {"kind": "function"}, None, None, False),
        ("task called outside Flyte", {"kind": "task"}, None, None, False),
        ("function in a task, own run", {"kind": "function", "identity": IDENT, "mode": "new"},
         None, None, False),
        ("function reusing its task's run", {"kind": "function", "identity": IDENT,
                                             "parent": Parent("p1", in_process=True)},
         "p1", None, True),
        ("child in another process", {"kind": "task", "identity": IDENT,
                                      "parent": Parent("p1", entity="pe", project="pp")},
         "p1", None, True),
        ("trial", {"kind": "trial", "trial": Trial("sw", run_id="t1", param_path="/p")},
         "t1", None, False),
        ("distributed rank 0", {"kind": "function", "launcher_base": "job-f",
                                "topology": Topology.enumerate(1, 2)[0]}, "job-f", "allow", False),
    ],
)  # fmt: skip
def test_ids_and_resume(
    case: str, kw: dict[str, Any], run_id: str | None, resume: str | None, joins: bool
) -> None:
    settings: dict[str, Any] = {"project": "p", "entity": "e"}
    if "user_id" in kw:
        settings["id"] = kw.pop("user_id")
    if "mode" in kw:
        settings["run_mode"] = kw.pop("mode")
    r = resolve(settings, defaults=FORGE, **kw)
    assert (r.run_id, r.resume, r.joins_parent) == (run_id, resume, joins), case
    assert r.init_kwargs.get("id") == run_id
    assert r.init_kwargs.get("resume") == resume


def test_a_child_joining_writes_rows_not_identity_and_lives_in_the_parents_project() -> None:
    parent = Parent("p1", host="http://127.0.0.1:9", entity="pe", project="pp")
    r = resolve(
        {"project": "mine", "entity": "me", "name": "n", "tags": ["t"], "config": {"a": 1}},
        kind="task",
        defaults=FORGE,
        identity=IDENT,
        parent=parent,
    )
    assert (r.entity, r.project, r.server.api_url) == ("pe", "pp", "http://127.0.0.1:9")
    assert str(r.plan.role) == "secondary"
    assert not {"name", "tags", "config", "resume"} & set(r.init_kwargs)
    assert r.settings["x_primary"] is False
    assert r.url == "http://127.0.0.1:9/pe/pp/runs/p1"


def test_flyte_identity_goes_to_config_and_user_config_is_kept() -> None:
    r = resolve({"config": {"lr": 1}}, kind="task", defaults=FORGE, identity=IDENT)
    assert r.init_kwargs["config"] == {"lr": 1, "flyte": IDENT.as_config()}


def test_plugin_only_settings_never_reach_wandb_init() -> None:
    r = resolve(
        {"run_mode": "auto", "rank_scope": "global", "download_logs": True, "host": "h.io",
         "settings": {"mode": "offline"}, "project": "p"},
        kind="task", defaults=FORGE, identity=IDENT,
    )  # fmt: skip
    assert not {"run_mode", "rank_scope", "download_logs", "host", "settings"} & set(r.init_kwargs)


def test_a_trial_gets_the_agents_assignment() -> None:
    r = resolve(
        {"id": "ignored", "resume": "must"},
        kind="trial",
        defaults=FORGE,
        trial=Trial("sweep-1", run_id="t-7", param_path="/tmp/p.yaml"),
    )
    assert r.run_id == "t-7" and "resume" not in r.init_kwargs
    assert r.settings["sweep_id"] == "sweep-1"
    assert r.settings["sweep_param_path"] == "/tmp/p.yaml"


def test_choose_parent() -> None:
    enclosing, published = Parent("e", in_process=True), Parent("p")
    assert choose_parent("trial", enclosing, published) is None
    assert choose_parent("function", enclosing, published) is enclosing
    assert choose_parent("function", None, published) is published
    assert choose_parent("task", enclosing, published) is published


def test_entity_from_defaults_and_no_url_without_one() -> None:
    with_entity = ClientDefaults(entity="team", project="proj")
    r = resolve({}, kind="task", defaults=with_entity, identity=IDENT)
    assert (r.entity, r.project) == ("team", "proj")
    assert r.url == "https://forge.coreweave.com/wandb/team/proj/runs/r1-a0"
    assert resolve({}, kind="task", defaults=FORGE, identity=IDENT).url is None


def test_sweep_link() -> None:
    assert sweep_link({"entity": "e", "project": "p"}, defaults=FORGE, sweep_id="s1") == (
        "https://forge.coreweave.com/wandb/e/p/sweeps/s1"
    )
    assert sweep_link({"entity": "e"}, defaults=FORGE, sweep_id=None) == (
        "https://forge.coreweave.com/wandb/e/uncategorized/sweeps"
    )
    assert sweep_link({}, defaults=FORGE, sweep_id="s1") == "https://forge.coreweave.com/wandb"


# -- links and runs: one decision --------------------------------------------------------

_modes = st.sampled_from(["auto", "new", "shared"])
_scopes = st.sampled_from(["global", "worker"])
_parents = st.one_of(
    st.none(),
    st.builds(
        Parent,
        id=st.sampled_from(["par-1", "par-2"]),
        entity=st.sampled_from([None, "pe"]),
        project=st.sampled_from([None, "pp"]),
        host=st.sampled_from([None, "http://127.0.0.1:7"]),
    ),
)


@settings(max_examples=300)
@given(
    mode=_modes,
    scope=_scopes,
    nnodes=st.integers(1, 3),
    nproc=st.integers(1, 3),
    parent=_parents,
    user_id=st.sampled_from([None, "mine"]),
    entity=st.sampled_from([None, "team"]),
    defaults=st.sampled_from([FORGE, SELF_HOSTED, ClientDefaults(entity="env-team")]),
)
def test_every_link_is_a_page_of_a_run_the_job_creates(
    mode: str,
    scope: str,
    nnodes: int,
    nproc: int,
    parent: Parent | None,
    user_id: str | None,
    entity: str | None,
    defaults: ClientDefaults,
) -> None:
    """For every shape, the pages links render are exactly the pages of the runs (or groups) the
    job's processes create, on the same server, entity and project."""
    settings_: dict[str, Any] = {"run_mode": mode, "rank_scope": scope, "project": "proj"}
    if entity:
        settings_["entity"] = entity
    if user_id:
        settings_["id"] = user_id
    pages = link_pages(
        settings_,
        defaults=defaults,
        run_name="r1",
        action_name="a0",
        parent=parent,
        nnodes=nnodes,
        nproc_per_node=nproc,
    )
    runs = [
        resolve(
            settings_,
            kind="task",
            defaults=defaults,
            identity=IDENT_FOR_LINKS,
            topology=t,
            parent=parent,
        )
        for t in Topology.enumerate(nnodes, nproc)
    ]
    logging = [r for r in runs if r.plan.logs]
    if mode == "new":
        expected = {(r.group, r.server, r.entity, r.project) for r in logging}
        assert {(p.id, p.server, p.entity, p.project) for p in pages} == expected
    else:
        expected = {(r.run_id, r.server, r.entity, r.project) for r in logging}
        assert {(p.id, p.server, p.entity, p.project) for p in pages} == expected
        for p in pages:
            same = [r for r in logging if r.run_id == p.id]
            assert all(r.url == p.url for r in same)


IDENT_FOR_LINKS = Identity(run_name="r1", action_name="a0")
