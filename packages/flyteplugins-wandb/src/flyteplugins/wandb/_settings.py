"""Every setting of ``wandb_config`` / ``@wandb_init`` in one table with its check, run where the
setting is given; errors name the bad value and what is allowed. Imports neither wandb nor flyte."""

from __future__ import annotations

import difflib
import math
import os
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final, Literal, NamedTuple

from flyteplugins.wandb_core import check_user_id, parse_rank_scope, parse_run_mode

from ._extension import SWEEPS_EXTRA_HINT, download_registered


class Setting(NamedTuple):
    """One setting: ``accepts`` is also the error's "expected ..."; ``kind`` (a type), ``choices``
    and ``rule`` are checked when given. ``goes_to``: passed to ``wandb.init``, read by the
    ``plugin`` (resolver, links, extensions) or at ``runtime`` (start, finish), or ``both``."""

    name: str
    accepts: str
    default: str
    goes_to: Literal["wandb.init", "plugin", "runtime", "both"]
    kind: type | tuple[type, ...] | None = None
    choices: tuple[object, ...] = ()
    rule: Callable[[Any], object] | None = None


MAX_TAG_LENGTH: Final = 64  # the client's Settings.validate_run_tags
MAX_PROJECT_LENGTH: Final = 128  # the client's Settings.validate_project
# They would split a run's path (entity/project/run) and URL: the client refuses them in a
# project, the plugin in an entity (one segment of the same path) too.
PATH_CHARACTERS: Final = "/\\#?%:"
SECRET_NAMES: Final = frozenset({"api_key", "key", "wandb_api_key", "token"})
_YES_NO: Final = frozenset({"yes", "no", "y", "n", "true", "false", "on", "off", "1", "0"})


class WandbIdShortened(UserWarning):
    """A run id longer than W&B accepts with the plugin's suffixes is shortened with a hash."""


def _bad(name: str, value: Any, expected: str, error: type[Exception] = ValueError) -> Exception:
    """The error naming a bad value (and its type, for a ``TypeError``) and what is allowed."""
    kind = f" ({type(value).__name__})" if error is TypeError else ""
    return error(f"{name}={value!r}{kind}: expected {expected}")


def _shown(text: str) -> str:
    return text if len(text) <= 43 else f"{text[:20]}...{text[-20:]}"


def check_seconds(name: str, value: Any, zero: str) -> None:
    """A number of seconds >= 0 (``zero`` says what 0 means), naming ``name`` when it is not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise _bad(name, value, f"a number of seconds >= 0 ({zero})")


def _check_name(name: str, value: str, also: str = "", longest: int = 0) -> None:
    """Not empty, none of :data:`PATH_CHARACTERS`, at most ``longest`` characters when given; with
    ``also`` (their description), no whitespace or control characters either."""
    if not value.strip():
        raise ValueError(f"{name}={value!r} is empty: give a W&B {name} name or leave it unset")
    odd = {c for c in value if also and (c.isspace() or not c.isprintable())}
    if bad := sorted(odd | (set(value) & set(PATH_CHARACTERS))):
        article = "an" if name[0] in "aeiou" else "a"
        raise ValueError(
            f"{name}={value!r} contains {', '.join(map(repr, bad))}: W&B refuses the characters "
            f"{' '.join(PATH_CHARACTERS)}{also} in {article} {name} name"
        )
    if longest and len(value) > longest:
        raise ValueError(
            f"{name}={_shown(value)!r} has {len(value)} characters: W&B accepts at most {longest}"
        )


check_project: Final = partial(_check_name, "project", longest=MAX_PROJECT_LENGTH)
check_entity: Final = partial(_check_name, "entity", also=", whitespace and control characters")


def check_tags(tags: Any) -> None:
    """A list of str, each 1 to 64 characters long (the client's own rule)."""
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise _bad("tags", tags, _ROWS["tags"].accepts, TypeError)
    for i, tag in enumerate(tags):
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            raise ValueError(
                f"tags[{i}]={_shown(tag)!r} has {len(tag)} characters: W&B accepts tags of 1 to "
                f"{MAX_TAG_LENGTH} characters"
            )


def _check_id(value: Any) -> None:
    if (used := check_user_id(value)) != value:
        warnings.warn(
            f"id={value!r} has {len(value)} characters, more than W&B accepts with the suffixes "
            f"the plugin may add; the run id used is {used!r}",
            WandbIdShortened,
            stacklevel=6,  # the user's wandb_config / @wandb_init
        )


def _check_download_target(value: Any) -> None:
    if value == "":
        raise ValueError("download_logs='' is empty: give True (the default folder) or a folder")
    if isinstance(value, str) and value.strip().lower() in _YES_NO:
        raise TypeError(
            f"download_logs={value!r} reads as a yes/no answer, not a folder: give True or "
            f"False, or a folder path (e.g. './{value}')"
        )
    check_download_logs(value)


def check_download_logs(value: Any) -> None:
    """``download_logs`` needs the log download of the sweeps distribution: refuse it without."""
    if value and not download_registered():
        raise ImportError(
            f"download_logs={value!r} needs the log download of the flyteplugins-wandb-sweeps "
            f"distribution, which is not installed: {SWEEPS_EXTRA_HINT}"
        )


def _warn_start(value: Any) -> None:
    warnings.warn(
        f"start={value!r} is deprecated and has no effect: every W&B run starts before the "
        "task's code runs (the background start lost logged rows when the server failed; see "
        "the migration guide). Remove start=; flyteplugins-wandb 3.2 refuses it.",
        DeprecationWarning,
        stacklevel=6,
    )


# fmt: off
TABLE: Final = (
    Setting("project", "a str of <= 128 characters, no / \\ # ? % :",
            "WANDB_PROJECT, else the client's", "both", str, rule=check_project),
    Setting("entity", "a str: a user or team name", "WANDB_ENTITY, else the key's", "both", str,
            rule=check_entity),
    Setting("host", "a str: the W&B server's URL", "WANDB_BASE_URL, else client's", "plugin", str),
    Setting("id", "a run id (the ranks' ids derive from it)", "the Flyte action's", "both",
            rule=_check_id),
    Setting("name", "a str", "the client's", "wandb.init", str),
    Setting("tags", "a list of str of 1 to 64 characters", "none", "wandb.init", rule=check_tags),
    Setting("config", "a dict (merged: decorator over context)", "none", "wandb.init", Mapping),
    Setting("mode", "one of 'online', 'offline', 'disabled', 'shared'", "WANDB_MODE, else online",
            "both", None, ("online", "offline", "disabled", "shared")),
    Setting("group", "a str", "from the plan (distributed jobs)", "both", str),
    Setting("run_mode", "auto, new or shared", "auto", "plugin", rule=parse_run_mode),
    Setting("rank_scope", "global or worker", "global", "plugin", rule=parse_rank_scope),
    Setting("download_logs", "True, False or the folder to download into (a str or os.PathLike)",
            "False", "plugin", (bool, str, os.PathLike), rule=_check_download_target),
    Setting("job_type", "a str", "none", "wandb.init", str),
    Setting("notes", "a str", "none", "wandb.init", str),
    Setting("finish_timeout", "seconds >= 0 (0 waits for every upload)", "30", "runtime",
            rule=partial(check_seconds, "finish_timeout", zero="0 waits for every upload")),
    Setting("offline_fallback", "True or False", "False", "runtime", bool),
    Setting("sync", "one of 'after' (log offline, then upload with the sync task)", "none",
            "plugin", None, ("after",)),
    Setting("report", "True or False", "False", "plugin", bool),
    Setting("log_outputs", "True or False", "False", "plugin", bool),
    Setting("log_inputs", "True or False", "False", "plugin", bool),
    Setting("start", "one of 'background', 'blocking' (deprecated, no effect)", "blocking",
            "plugin", None, ("background", "blocking"), _warn_start),
)
"""Every setting, in the order of ``wandb_config``'s parameters (the first twelve in 2.x's order).
Any other keyword must be a ``wandb.init`` keyword and is passed to it as it is."""

# The keywords of ``wandb.init`` in the supported client, so that checking never imports wandb;
# test_validation.py compares them with the installed client's signature.
WANDB_INIT_KEYWORDS: Final = (
    "entity", "project", "dir", "id", "name", "notes", "tags", "config", "config_exclude_keys",
    "config_include_keys", "allow_val_change", "group", "job_type", "mode", "force", "reinit",
    "resume", "resume_from", "fork_from", "save_code", "tensorboard", "sync_tensorboard",
    "monitor_gym", "settings", "anonymous",
)
# fmt: on

_ROWS: Final = {s.name: s for s in TABLE}
KNOWN_SETTINGS: Final = tuple(_ROWS)
PLUGIN_ONLY: Final = frozenset(s.name for s in TABLE if s.goes_to == "plugin")
OPTIONS: Final = ("report", "log_outputs", "log_inputs")  # the extensions' on/off settings


def check(name: str, value: Any) -> None:
    """Check the setting ``name`` by its row of :data:`TABLE` (``None``: not given)."""
    row = _ROWS[name]
    if value is None:
        return
    if row.kind is not None and not isinstance(value, row.kind):
        raise _bad(name, value, row.accepts, TypeError)
    if row.choices and value not in row.choices:
        raise _bad(name, value, row.accepts)
    if row.rule is not None:
        row.rule(value)


check_finish_timeout: Final = partial(check, "finish_timeout")
check_offline_fallback: Final = partial(check, "offline_fallback")


def check_sync(value: Any, mode: Any = None, offline_fallback: Any = None) -> None:
    """``sync``: ``"after"`` or ``None``; it contradicts an explicit mode other than offline and
    ``offline_fallback`` (a run that always logs offline has nothing to fall back from)."""
    check("sync", value)
    if value is not None and mode not in (None, "offline"):
        raise ValueError(
            f"sync={value!r} logs offline and uploads later, but mode={mode!r} was given with it: "
            "drop mode= (or give mode='offline')"
        )
    if value is not None and offline_fallback is True:
        raise ValueError(
            f"sync={value!r} logs offline from the start, so offline_fallback=True (log offline "
            "when the server cannot be reached at start) would never apply: give one of them"
        )


def check_no_secret(values: Mapping[str, Any]) -> None:
    """Refuse an API key among the settings (it would be stored where anyone can read it),
    naming the setting, never its value."""
    for name in values:
        if name.lower() in SECRET_NAMES:
            raise ValueError(
                f"{name}= is not accepted: an API key given here would be stored in the run's "
                "custom_context or config. Give the task a secret exposed as WANDB_API_KEY "
                '(flyte.Secret(key="wandb_api_key", as_env_var="WANDB_API_KEY")) instead.'
            )


def normalize_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check settings where they are given (an API key, a keyword that is neither a setting nor
    a ``wandb.init`` keyword, a bad value: refused) and bring them to their canonical form."""
    check_no_secret(values)
    allowed = (*KNOWN_SETTINGS, *WANDB_INIT_KEYWORDS)
    for name in values:
        if name in allowed:
            continue
        # the name most likely meant: its first word (``sync_mode``), else the closest spelling
        first = str(name).lower().replace("-", "_").split("_")[0]
        guess = [first] if first in allowed else difflib.get_close_matches(str(name), allowed, 1)
        raise TypeError(
            f"unknown keyword {name!r}: {f'did you mean {guess[0]!r}? ' if guess else ''}"
            f"accepted are the plugin's settings ({', '.join(KNOWN_SETTINGS)}) and the keywords "
            f"of wandb.init ({', '.join(k for k in WANDB_INIT_KEYWORDS if k not in _ROWS)})"
        )
    for name in KNOWN_SETTINGS:
        check(name, values.get(name))
    check_sync(values.get("sync"), values.get("mode"), values.get("offline_fallback"))
    if values.get("settings") is not None:
        raise TypeError(
            "settings= cannot travel in custom_context; pass wandb.Settings to @wandb_init instead"
        )
    out = {k: v for k, v in values.items() if v is not None}
    if isinstance(out.get("download_logs"), os.PathLike):
        out["download_logs"] = os.fspath(out["download_logs"])
    for key, kind in (("tags", list), ("config", dict)):
        if key in out:
            out[key] = kind(out[key])
    return out


def extras_wanted(settings: Mapping[str, Any]) -> bool:
    """Whether a task's call with these settings needs the report tab or artifact logging."""
    return any(settings.get(name) for name in OPTIONS)


def refuse_extras_for_function(opts: Mapping[str, Any], target: Any) -> None:
    """``report``/``log_outputs``/``log_inputs`` belong to tasks: refused on a plain function."""
    if given := [name for name in OPTIONS if opts.get(name)]:
        raise TypeError(
            f"{', '.join(f'{n}=True' for n in given)} on "
            f"{getattr(target, '__qualname__', target)!r}: these apply to Flyte tasks (their "
            "report, typed inputs and outputs); put @wandb_init(...) above @env.task, or set "
            "them with wandb_config(...) for the tasks of a run"
        )
