"""Every setting of ``wandb_config`` / ``@wandb_init`` in one table, with its check.

:data:`TABLE` names each setting, what it accepts, its default and where it goes; :func:`validate`
checks a set of settings where they are given (at decoration, in ``wandb_config``), naming the bad
value and what is allowed. The feature modules read settings; none of them checks one. Nothing
here imports wandb or flyte.
"""

from __future__ import annotations

import difflib
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from flyteplugins.wandb_core import check_user_id, parse_rank_scope, parse_run_mode

from ._extension import SWEEPS_EXTRA_HINT, download_registered

MODES: Final = ("online", "offline", "disabled", "shared")
"""Values of ``mode`` accepted by the wandb client (besides its legacy aliases)."""


@dataclass(frozen=True)
class Setting:
    """One setting of ``wandb_config`` / ``@wandb_init``: what it is and where it goes."""

    name: str
    #: What it accepts, for messages and the docs.
    accepts: str
    #: What applies when neither the decorator nor the context gives it.
    default: str
    #: ``wandb.init``: passed on as the keyword of that name; ``plugin``: read by the resolver,
    #: links or extensions (never reaches ``wandb.init``); ``runtime``: read by the runtime when
    #: it starts and finishes the run; ``both``: read by the resolver and passed on.
    goes_to: Literal["wandb.init", "plugin", "runtime", "both"]


TABLE: Final = (
    Setting(
        "project",
        "a name of <= 128 characters, no / \\ # ? % :",
        "WANDB_PROJECT or the client's",
        "both",
    ),
    Setting("entity", "a user or team name", "WANDB_ENTITY, else the key's default entity", "both"),
    Setting("host", "the W&B server's URL", "WANDB_BASE_URL, else the client's", "plugin"),
    Setting("id", "a run id (the ranks' ids derive from it)", "the Flyte action's", "both"),
    Setting("name", "str", "the client's", "wandb.init"),
    Setting("tags", "a list of str, each 1 to 64 characters", "none", "wandb.init"),
    Setting("config", "a dict (merged: decorator over context)", "none", "wandb.init"),
    Setting("mode", "one of " + ", ".join(MODES), "WANDB_MODE, else online", "both"),
    Setting("group", "str", "from the plan (distributed jobs)", "both"),
    Setting("run_mode", "auto, new or shared", "auto", "plugin"),
    Setting("rank_scope", "global or worker", "global", "plugin"),
    Setting("download_logs", "True, False or a folder", "False", "plugin"),
    Setting("job_type", "str", "none", "wandb.init"),
    Setting("notes", "str", "none", "wandb.init"),
    Setting("finish_timeout", "seconds >= 0 (0: wait for every upload)", "30", "runtime"),
    Setting("offline_fallback", "True or False", "False", "runtime"),
    Setting("sync", "'after'", "none (log as mode says)", "plugin"),
    Setting("report", "True or False", "False", "plugin"),
    Setting("log_outputs", "True or False", "False", "plugin"),
    Setting("log_inputs", "True or False", "False", "plugin"),
    Setting("start", "deprecated, no effect: 'blocking' or 'background'", "blocking", "plugin"),
)
"""Every setting, in the order of ``wandb_config``'s parameters (the first twelve in 2.x's order).
Any other keyword must be a ``wandb.init`` keyword and is passed to it as it is."""

KNOWN_SETTINGS: Final = tuple(s.name for s in TABLE)
PLUGIN_ONLY: Final = frozenset(s.name for s in TABLE if s.goes_to == "plugin")
OPTIONS: Final = ("report", "log_outputs", "log_inputs")
"""The extensions' on/off settings."""


SYNC_VALUES: Final = ("after",)
START_VALUES: Final = ("background", "blocking")


class WandbIdShortened(UserWarning):
    """A run id longer than W&B accepts with the plugin's suffixes is shortened with a hash."""


def check_id(value: Any) -> None:
    """A user's run id W&B accepts; warn when it is too long to be used as it is."""
    used = check_user_id(value)
    if used != value:
        warnings.warn(
            f"id={value!r} has {len(value)} characters, more than W&B accepts with the suffixes "
            f"the plugin may add; the run id used is {used!r}",
            WandbIdShortened,
            stacklevel=5,
        )


def check_flag(name: str, value: Any) -> None:
    """``report``, ``log_outputs``, ``log_inputs``: ``True`` or ``False`` (``None``: not given)."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name}={value!r} ({type(value).__name__}): expected True or False")


def check_seconds(name: str, value: Any, zero: str) -> None:
    """A number of seconds >= 0 (``zero`` says what 0 means), naming ``name`` when it is not."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name}={value!r}: expected a number of seconds >= 0 ({zero})")


def check_finish_timeout(value: Any) -> None:
    """``finish_timeout`` must be a number of seconds >= 0 (0 waits for every upload)."""
    if value is not None:
        check_seconds("finish_timeout", value, "0 waits until everything is uploaded")


def check_offline_fallback(value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(
            f"offline_fallback={value!r} ({type(value).__name__}): expected True or False"
        )


def check_start(value: Any) -> None:
    """``start`` is deprecated: every run starts before the task's code (3.2 drops it)."""
    if value is None:
        return
    if value not in START_VALUES:
        choices = ", ".join(repr(m) for m in START_VALUES)
        raise ValueError(f"invalid start={value!r}; expected one of {choices} (deprecated)")
    warnings.warn(
        f"start={value!r} is deprecated and has no effect: every W&B run starts before the "
        "task's code runs (the background start lost logged rows when the server failed; see "
        "the migration guide). Remove start=; flyteplugins-wandb 3.2 refuses it.",
        DeprecationWarning,
        stacklevel=5,
    )


def check_sync(value: Any, mode: Any = None, offline_fallback: Any = None) -> None:
    """``sync``: ``"after"`` (or unset); it contradicts an explicit online or disabled mode and
    ``offline_fallback`` (a run that always logs offline has nothing to fall back from)."""
    if value is None:
        return
    if value not in SYNC_VALUES:
        allowed = ", ".join(repr(v) for v in SYNC_VALUES)
        raise ValueError(
            f"sync={value!r}: expected one of {allowed} (log offline, then upload with the sync "
            "task), or leave it unset"
        )
    if mode is not None and mode != "offline":
        raise ValueError(
            f"sync={value!r} logs offline and uploads later, but mode={mode!r} was given with it: "
            "drop mode= (or give mode='offline')"
        )
    if offline_fallback is True:
        raise ValueError(
            f"sync={value!r} logs offline from the start, so offline_fallback=True (log offline "
            "when the server cannot be reached at start) would never apply: give one of them"
        )


# fmt: off
WANDB_INIT_KEYWORDS: Final = (
    "entity", "project", "dir", "id", "name", "notes", "tags", "config", "config_exclude_keys",
    "config_include_keys", "allow_val_change", "group", "job_type", "mode", "force", "reinit",
    "resume", "resume_from", "fork_from", "save_code", "tensorboard", "sync_tensorboard",
    "monitor_gym", "settings", "anonymous",
)
# fmt: on
"""The keywords of ``wandb.init`` in the supported client, written here so that checking a
setting never imports ``wandb``. A test compares this list with the installed client's
``inspect.signature(wandb.init)``: a client that adds or drops one fails that test."""

MAX_TAG_LENGTH: Final = 64
"""The client refuses tags that are empty or longer than this (``Settings.validate_run_tags``)."""

MAX_PROJECT_LENGTH: Final = 128
"""The client refuses longer project names (``Settings.validate_project``)."""

PATH_CHARACTERS: Final = "/\\#?%:"
"""Characters the client refuses in a project name: they would split or end the run's path
(``entity/project/run``) and URL. An entity (a user or team name) is one segment of the same
path, so the plugin refuses them there too, as well as whitespace and control characters."""


def check_download_logs(value: Any) -> None:
    """``download_logs`` needs the log download of the sweeps distribution: refuse it without."""
    if value and not download_registered():
        raise ImportError(
            f"download_logs={value!r} needs the log download of the flyteplugins-wandb-sweeps "
            f"distribution, which is not installed: {SWEEPS_EXTRA_HINT}"
        )


def check_keywords(names: Any) -> None:
    """Refuse a keyword that is neither a plugin setting nor a ``wandb.init`` keyword."""
    allowed = (*KNOWN_SETTINGS, *WANDB_INIT_KEYWORDS)
    for name in names:
        if name in allowed:
            continue
        guess = _closest(str(name), allowed)
        hint = f"did you mean {guess!r}? " if guess else ""
        raise TypeError(
            f"unknown keyword {name!r}: {hint}accepted are the plugin's settings "
            f"({', '.join(KNOWN_SETTINGS)}) and the keywords of wandb.init "
            f"({', '.join(k for k in WANDB_INIT_KEYWORDS if k not in KNOWN_SETTINGS)})"
        )


def _closest(name: str, allowed: tuple[str, ...]) -> str | None:
    """The accepted name a misspelt keyword most likely meant: one its first word is
    (``sync_mode`` -> ``sync``), else the closest spelling."""
    first = name.lower().replace("-", "_").split("_")[0]
    if first in allowed:
        return first
    close = difflib.get_close_matches(name, allowed, n=1)
    return close[0] if close else None


def _check_path_segment(name: str, value: str) -> None:
    bad = sorted({c for c in value if c in PATH_CHARACTERS})
    if bad:
        article = "an" if name[0] in "aeiou" else "a"
        raise ValueError(
            f"{name}={value!r} contains {', '.join(repr(c) for c in bad)}: W&B refuses the "
            f"characters {' '.join(PATH_CHARACTERS)} in {article} {name} name"
        )


def check_project(value: str) -> None:
    """A project name the client accepts: not empty, at most 128 characters, no path characters."""
    if not value.strip():
        raise ValueError(f"project={value!r} is empty: give a W&B project name or leave it unset")
    if len(value) > MAX_PROJECT_LENGTH:
        shown = value[:20] + "..." + value[-20:]
        raise ValueError(
            f"project={shown!r} has {len(value)} characters: "
            f"W&B accepts at most {MAX_PROJECT_LENGTH}"
        )
    _check_path_segment("project", value)


def check_entity(value: str) -> None:
    """An entity (user or team name) that fits in one segment of a run's path."""
    if not value.strip():
        raise ValueError(f"entity={value!r} is empty: give a W&B user or team name or none")
    _check_path_segment("entity", value)
    odd = sorted({c for c in value if c.isspace() or not c.isprintable()})
    if odd:
        raise ValueError(
            f"entity={value!r} contains {', '.join(repr(c) for c in odd)}: W&B user and team "
            "names have no whitespace or control characters"
        )


def check_tags(tags: Any) -> None:
    """A list of str, each 1 to 64 characters long (the client's own rule)."""
    if (
        isinstance(tags, str)
        or not isinstance(tags, (list, tuple))
        or not all(isinstance(t, str) for t in tags)
    ):
        raise TypeError(f"tags={tags!r}: expected a list of str")
    for i, tag in enumerate(tags):
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            shown = tag if len(tag) <= 43 else f"{tag[:20]}...{tag[-20:]}"
            raise ValueError(
                f"tags[{i}]={shown!r} has {len(tag)} characters: W&B accepts tags of 1 to "
                f"{MAX_TAG_LENGTH} characters"
            )


_YES_NO: Final = frozenset({"yes", "no", "y", "n", "true", "false", "on", "off", "1", "0"})


def check_download_target(value: Any) -> None:
    """``download_logs``: ``True``/``False``, or the folder to download into (str or path)."""
    if isinstance(value, bool):
        return
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if not text:
            raise ValueError(
                "download_logs='' is empty: give True (the default folder) or a folder path"
            )
        if isinstance(value, str) and text.strip().lower() in _YES_NO:
            raise TypeError(
                f"download_logs={value!r} reads as a yes/no answer, not a folder: give True or "
                f"False, or a folder path (e.g. './{text}')"
            )
        return
    raise TypeError(
        f"download_logs={value!r} ({type(value).__name__}): expected True, False or the folder "
        "to download into (a str or os.PathLike)"
    )


def validate(values: Mapping[str, Any]) -> None:
    """Reject bad settings at the call that gave them, naming the value and what is allowed."""
    check_keywords(values)
    if values.get("run_mode") is not None:
        parse_run_mode(values["run_mode"])
    if values.get("rank_scope") is not None:
        parse_rank_scope(values["rank_scope"])
    for name in ("project", "entity", "host", "name", "group", "job_type", "notes"):
        v = values.get(name)
        if v is not None and not isinstance(v, str):
            raise TypeError(f"{name}={v!r} ({type(v).__name__}): expected a str")
    if values.get("project") is not None:
        check_project(values["project"])
    if values.get("entity") is not None:
        check_entity(values["entity"])
    if values.get("id") is not None:
        check_id(values["id"])
    mode = values.get("mode")
    if mode is not None and mode not in MODES:
        choices = ", ".join(repr(m) for m in MODES)
        raise ValueError(f"invalid mode {mode!r}; expected one of {choices}")
    if values.get("tags") is not None:
        check_tags(values["tags"])
    config = values.get("config")
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"config={config!r} ({type(config).__name__}): expected a dict")
    if values.get("download_logs") is not None:
        check_download_target(values["download_logs"])
        check_download_logs(values["download_logs"])
    check_finish_timeout(values.get("finish_timeout"))
    check_offline_fallback(values.get("offline_fallback"))
    check_start(values.get("start"))
    check_sync(values.get("sync"), values.get("mode"), values.get("offline_fallback"))
    for name in OPTIONS:
        check_flag(name, values.get(name))
    if "settings" in values and values["settings"] is not None:
        raise TypeError(
            "settings= cannot travel in custom_context; pass wandb.Settings to @wandb_init instead"
        )


SECRET_NAMES: Final = frozenset({"api_key", "key", "wandb_api_key", "token"})


def check_no_secret(values: Mapping[str, Any]) -> None:
    """Refuse an API key among the settings: it would be stored where anyone can read it.

    The message names the setting, never its value.
    """
    for name in values:
        if name.lower() in SECRET_NAMES:
            raise ValueError(
                f"{name}= is not accepted: an API key given here would be stored in the run's "
                "custom_context or config. Give the task a secret exposed as WANDB_API_KEY "
                '(flyte.Secret(key="wandb_api_key", as_env_var="WANDB_API_KEY")) instead.'
            )


def normalize_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate settings and bring them to their canonical form (``tags`` as a list)."""
    validate(values)
    out = {k: v for k, v in values.items() if v is not None}
    if isinstance(out.get("download_logs"), os.PathLike):
        out["download_logs"] = os.fspath(out["download_logs"])
    if "tags" in out:
        out["tags"] = list(out["tags"])
    if "config" in out:
        out["config"] = dict(out["config"])
    return out


def extras_wanted(settings: Mapping[str, Any]) -> bool:
    """Whether a task's call with these settings needs the report tab or artifact logging."""
    return any(settings.get(name) for name in OPTIONS)


def refuse_extras_for_function(opts: Mapping[str, Any], target: Any) -> None:
    """``report``/``log_outputs``/``log_inputs`` belong to tasks: refused on a plain function."""
    given = [name for name in OPTIONS if opts.get(name)]
    if given:
        raise TypeError(
            f"{', '.join(f'{n}=True' for n in given)} on "
            f"{getattr(target, '__qualname__', target)!r}: "
            "these apply to Flyte tasks (their report, typed inputs and outputs); put "
            "@wandb_init(...) above @env.task, or set them with wandb_config(...) for the tasks "
            "of a run"
        )
