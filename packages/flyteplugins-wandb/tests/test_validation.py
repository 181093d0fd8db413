"""Settings checked where they are written: at decoration and at the ``wandb_config`` call.

The rules are the installed client's own (compared with ``wandb.Settings`` and the signature of
``wandb.init`` here), applied without importing ``wandb``.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from typing import Any

import pytest
import wandb
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb import wandb_config, wandb_init
from flyteplugins.wandb._settings import (
    KNOWN_SETTINGS,
    MAX_PROJECT_LENGTH,
    MAX_TAG_LENGTH,
    WANDB_INIT_KEYWORDS,
    check_project,
    check_tags,
)


def test_the_static_keyword_list_is_the_installed_clients() -> None:
    # a wandb upgrade that adds or drops a keyword fails here, not in a user's task
    params = inspect.signature(wandb.init).parameters.values()
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    assert list(WANDB_INIT_KEYWORDS) == [p.name for p in params]


def test_every_init_keyword_is_accepted() -> None:
    for name in WANDB_INIT_KEYWORDS:
        if name in ("settings", *KNOWN_SETTINGS):
            continue  # checked by their own rules
        wandb_init(**{name: None})
        wandb_config(**{name: True})


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"projct": "p"}, TypeError, r"unknown keyword 'projct': did you mean 'project'\?"),
    ({"tag": ["a"]}, TypeError, r"unknown keyword 'tag': did you mean 'tags'\?"),
    ({"resum": "allow"}, TypeError, r"'resum'.*'resume'"),
    ({"zzz": 1}, TypeError, r"unknown keyword 'zzz': accepted are .*'?reinit"),
    ({"tags": ["x" * 65]}, ValueError, r"tags\[0\]=.* has 65 characters: .* 1 to 64"),
    ({"tags": ["ok", ""]}, ValueError, r"tags\[1\]='' has 0 characters"),
    ({"project": "x" * 129}, ValueError, r"has 129 characters: W&B accepts at most 128"),
    ({"project": "team/proj"}, ValueError, r"project='team/proj' contains '/'"),
    ({"project": "a#b?"}, ValueError, r"contains '#', '\?'"),
    ({"project": ""}, ValueError, r"project='' is empty"),
    ({"project": "   "}, ValueError, r"project='   ' is empty"),
    ({"entity": "my team"}, ValueError, r"entity='my team' contains ' '"),
    ({"entity": "a/b"}, ValueError, r"entity='a/b' contains '/'"),
    ({"entity": "a\tb"}, ValueError, r"entity='a\\tb'"),
    ({"entity": ""}, ValueError, r"entity='' is empty"),
    ({"download_logs": "yes"}, TypeError, r"download_logs='yes' reads as a yes/no answer"),
    ({"download_logs": ""}, ValueError, r"download_logs='' is empty"),
    ({"download_logs": 2}, TypeError, r"download_logs=2 \(int\)"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD)
def test_refused_where_written(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        wandb_config(**kwargs)
    with pytest.raises(error, match=match):
        wandb_init(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"project": "x" * MAX_PROJECT_LENGTH},
        {"project": "a b-c_d.e(1)"},
        {"tags": ["t" * MAX_TAG_LENGTH, "a"]},
        {"entity": "my-team_2"},
        {"download_logs": "logs/out"},
        {"download_logs": True},
    ],
)
def test_accepted_at_the_limits(kwargs: dict[str, Any]) -> None:
    wandb_config(**kwargs)
    wandb_init(**kwargs)


def _client_refuses(**settings: Any) -> bool:
    try:
        wandb.Settings(**settings)
    except Exception:
        return True
    return False


def _we_refuse(check: Any, value: Any) -> bool:
    try:
        check(value)
    except ValueError:
        return True
    return False


names = st.text(alphabet=st.sampled_from("ab-_. /\\#?%:é1"), max_size=140) | st.text(max_size=140)


@given(names)
def test_project_rule_is_the_clients(value: str) -> None:
    if not value.strip():  # the client takes an empty project as "none given"; we refuse it
        assert _we_refuse(check_project, value)
        return
    assert _we_refuse(check_project, value) == _client_refuses(project=value)


@given(st.lists(st.text(max_size=70), max_size=3))
def test_tag_rule_is_the_clients(tags: list[str]) -> None:
    assert _we_refuse(check_tags, tags) == _client_refuses(run_tags=tuple(tags))


def test_checking_does_not_import_wandb() -> None:
    code = (
        "import sys, json\n"
        "from flyteplugins.wandb import wandb_config, wandb_init\n"
        "errors = []\n"
        "for kw in ({'projct': 'p'}, {'tags': ['x' * 80]}, {'project': 'a/b'}):\n"
        "    try:\n"
        "        wandb_init(**kw)\n"
        "    except (TypeError, ValueError) as e:\n"
        "        errors.append(type(e).__name__)\n"
        "wandb_config(project='p', resume='allow')\n"
        "print(json.dumps([errors, 'wandb' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        ["TypeError", "ValueError", "ValueError"],
        False,
    ]


def test_download_logs_without_the_sweeps_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    # No distribution registers the download in this group: as without the sweeps one.
    from flyteplugins.wandb import _extension

    monkeypatch.setattr(_extension, "DOWNLOAD_GROUP", "flyteplugins.wandb.download-absent")
    for value in (True, "some/folder"):
        with pytest.raises(ImportError, match=r'pip install "flyteplugins-wandb\[sweeps\]"'):
            wandb_config(download_logs=value)
        with pytest.raises(ImportError, match=r"download_logs="):
            wandb_init(download_logs=value)
    wandb_config(download_logs=False)  # nothing to download: nothing needed


# -- what users tripped on (issue "What users tripped on this week") ------------------------------


def test_a_misspelt_keyword_suggests_the_setting_its_first_word_names() -> None:
    with pytest.raises(TypeError, match="did you mean 'sync'"):
        wandb_config(sync_mode="after")
    with pytest.raises(TypeError, match="did you mean 'run_mode'"):
        wandb_config(run_mod="new")


def test_path_characters_are_named_with_the_right_article() -> None:
    with pytest.raises(ValueError, match="in an entity name"):
        wandb_config(entity="a/b")
    with pytest.raises(ValueError, match="in a project name"):
        wandb_config(project="a/b")


def test_sync_after_refuses_offline_fallback() -> None:
    with pytest.raises(ValueError, match=r"offline_fallback=True .* would never apply"):
        wandb_config(sync="after", offline_fallback=True)
    with pytest.raises(ValueError, match="offline_fallback"):
        wandb_init(sync="after", offline_fallback=True)


def test_an_id_too_long_to_use_as_given_is_named_with_the_id_used() -> None:
    from flyteplugins.wandb import WandbIdShortened
    from flyteplugins.wandb_core import check_user_id

    long_id = "x" * 120
    with pytest.warns(WandbIdShortened, match=check_user_id(long_id)):
        wandb_init(id=long_id)
    with pytest.warns(WandbIdShortened):
        wandb_config(id=long_id)


def test_report_sweep_refuses_what_is_not_a_sweep_result() -> None:
    from flyteplugins.wandb import report_sweep

    for bad in ("x", {}, {"trials": "no"}):
        with pytest.raises(TypeError, match="run_parallel_agents"):
            report_sweep(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("garbage", "http:// or https://"),
        ("http://h:99999", "port"),
        ("https://", "no host"),
    ],
)
def test_a_bad_wandb_base_url_is_named_with_its_value(value: str, problem: str) -> None:
    from flyteplugins.wandb import _client

    with pytest.raises(ValueError, match=f"WANDB_BASE_URL={value!r}.*{problem}"):
        _client.read_defaults({"WANDB_BASE_URL": value})
