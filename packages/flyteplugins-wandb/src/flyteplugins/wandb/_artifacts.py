"""Flyte's typed values in W&B: outputs as artifacts by reference, inputs as lineage and config.

``log_outputs=True``: every ``flyte.io.File`` / ``flyte.io.Dir`` a task returns (also inside
dataclasses, lists, tuples and dicts) is logged as a W&B artifact that *references* the object
where Flyte stored it (``add_reference(uri)``, with checksums where the client can compute them):
nothing is uploaded a second time; local runs reference ``file://`` paths. The artifact is named
``<task>-<output>`` (``train-o0``, ``prepare-o0.features``), typed ``flyte-file`` or ``flyte-dir``,
carries the Flyte run, action and output in its metadata and an alias naming that output
(``flyte-<run>-<action>-<output>``); a record (``_stores``) says which artifact version describes
the object, for the tasks that receive it. Scalars and small values returned go to the run's
summary under ``outputs/<output>``. Without the client library of an ``s3://`` / ``gs://`` store
an output is not logged (one :class:`WandbArtifactFailed` warning names the extra; its URI goes
to the summary) and :func:`log_model_checkpoint` raises :class:`WandbCloudExtraMissing`.

``log_inputs=True``: the task's scalar inputs go to the run's config under ``flyte_inputs``
(never values of parameters whose name says they hold a secret, never long values), and every
``File`` / ``Dir`` input that an upstream task logged is declared as used by this run
(``run.use_artifact``), which draws producer -> consumer in W&B's lineage graph. The client
refuses ``use_artifact`` offline; the use is then recorded in the run's config
(``flyte_input_artifacts``: artifact, digest, reference) and :func:`apply_recorded_uses` declares
it once the run was synced.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from ._state import current_active, get_wandb_run
from ._stores import (
    StoreLibrary,
    extra_hint,
    flyte_places,
    missing_library,
    read_text,
    record_place,
    record_places,
    write_text,
)

SUMMARY_PREFIX: Final = "outputs/"
INPUTS_KEY: Final = "flyte_inputs"
INPUT_ARTIFACTS_KEY: Final = "flyte_input_artifacts"
MAX_VALUE_CHARS: Final = 256
"""Strings (and the JSON of small values) longer than this stay out of config and summary."""
MAX_DEPTH: Final = 6
SECRET_WORDS: Final = ("key", "token", "secret", "password", "passwd", "credential", "auth")
COMMIT_WAIT_S: Final = 60.0
"""Online, how long a producer waits for its artifact to be committed (consumers need it)."""


class WandbArtifactFailed(UserWarning):
    """Logging or using an artifact failed; the task and its run are not affected."""


class WandbCloudExtraMissing(ImportError):
    """W&B needs a cloud store's client library to reference an object there; an extra of
    ``flyteplugins-wandb`` installs it (``[aws]`` for ``s3://``, ``[gcp]`` for ``gs://``)."""


def _flyte_io() -> tuple[type, type]:
    from flyte.io import Dir, File

    return File, Dir


def is_blob(value: Any) -> bool:
    file_cls, dir_cls = _flyte_io()
    return isinstance(value, (file_cls, dir_cls))


def blobs(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """``(path, File | Dir)`` for every Flyte blob in ``value`` (dataclasses, lists, dicts)."""
    if depth > MAX_DEPTH or value is None or isinstance(value, (str, bytes, int, float, bool)):
        return
    if is_blob(value):
        yield path, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from blobs(getattr(value, f.name), f"{path}.{f.name}", depth + 1)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from blobs(v, f"{path}.{k}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from blobs(v, f"{path}.{i}", depth + 1)


def uri_of(blob: Any) -> str:
    """Where the object lives: its remote URI, or a local path as a ``file://`` URI."""
    path = str(blob.path)
    if "://" in path:
        return path
    return "file://" + os.path.abspath(path)


_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def artifact_name(task: str, output: str) -> str:
    """``<task>-<output>`` in the characters W&B allows in artifact names."""
    short = task.rsplit(".", 1)[-1]
    return _NAME_BAD.sub("-", f"{short}-{output}").strip("-")[:128]


def output_alias(identity: Mapping[str, Any] | None, output: str) -> str | None:
    if not identity:
        return None
    text = f"flyte-{identity.get('run_name')}-{identity.get('action_name')}-{output}"
    return _NAME_BAD.sub("-", text)[:128]


# -- outputs -------------------------------------------------------------------------------------


def output_items(func: Callable[..., Any], result: Any) -> list[tuple[str, Any]]:
    """The task's outputs by Flyte name: ``o0``, ``o1``, ... (a ``NamedTuple``: its field names)."""
    if isinstance(result, tuple):
        fields = getattr(result, "_fields", None)
        if fields:
            return list(zip(fields, result, strict=True))
        try:
            hint = typing.get_type_hints(func).get("return")
        except Exception:
            hint = None
        if typing.get_origin(hint) is tuple:
            return [(f"o{i}", v) for i, v in enumerate(result)]
    return [("o0", result)]


def small_value(value: Any) -> Any | None:
    """A value fit for a summary or config: a scalar, or a small JSON-able value; else ``None``.

    Blobs inside are replaced by their URI.
    """
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else None
    try:
        plain = _plain(value, 0)
        text = json.dumps(plain, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return plain if len(text) <= MAX_VALUE_CHARS * 4 else None


def _plain(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError("too deep")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if is_blob(value):
        return uri_of(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    raise TypeError(type(value).__name__)


def log_outputs(
    run: Any, task: str, func: Callable[..., Any], result: Any, identity: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Log the outputs of one call; return what was logged (for the report)."""
    import wandb

    logged: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    unreferenced: dict[str, tuple[str, StoreLibrary]] = {}
    for name, value in output_items(func, result):
        found = list(blobs(value, name))
        for path, blob in found:
            lib = missing_library(uri_of(blob))
            if lib is not None:
                unreferenced[path] = (uri_of(blob), lib)
                summary[SUMMARY_PREFIX + path] = uri_of(blob)
                continue
            logged.append(_log_blob(wandb, run, task, path, blob, identity))
        if not found or not is_blob(value):
            small = small_value(value)
            if small is not None:
                summary[SUMMARY_PREFIX + name] = small
    if summary:
        run.summary.update(summary)
    if unreferenced:
        outputs = ", ".join(f"{path} ({uri})" for path, (uri, _) in unreferenced.items())
        warnings.warn(
            f"{task}: no W&B artifact logged for {outputs} (the URIs are in the run's summary): "
            + extra_hint(lib for _, lib in unreferenced.values()),
            WandbArtifactFailed,
            stacklevel=2,
        )
    return logged


def _log_blob(
    wandb: Any, run: Any, task: str, output: str, blob: Any, identity: Mapping[str, Any] | None
) -> dict[str, Any]:
    _, dir_cls = _flyte_io()
    kind = "dir" if isinstance(blob, dir_cls) else "file"
    uri = uri_of(blob)
    name = artifact_name(task, output)
    alias = output_alias(identity, output)
    metadata = {"flyte": {**(identity or {}), "output": output, "uri": uri, "kind": kind}}
    artifact = wandb.Artifact(name, type=f"flyte-{kind}", metadata=metadata)
    try:
        artifact.add_reference(uri, checksum=True)
    except Exception as exc:  # e.g. a store whose client library is not installed
        warnings.warn(
            f"artifact {name}: checksums of {uri} cannot be computed here ({exc}); it is "
            "referenced without them",
            WandbArtifactFailed,
            stacklevel=3,
        )
        artifact = wandb.Artifact(name, type=f"flyte-{kind}", metadata=metadata)
        artifact.add_reference(uri, checksum=False)
    run.log_artifact(artifact, aliases=[alias] if alias else None)
    offline = bool(getattr(run.settings, "_offline", False))
    version = None
    if not offline:
        artifact.wait(timeout=COMMIT_WAIT_S)
        version = artifact.version
    record = {
        "entity": run.entity or None,
        "project": run.project,
        "name": name,
        "alias": alias,
        "version": version,
        "digest": artifact.digest,
        "type": artifact.type,
        "uri": uri,
    }
    place = record_place(uri, *flyte_places())
    if place is not None:
        write_text(place, json.dumps(record))
    return {**record, "direction": "output"}


# -- inputs --------------------------------------------------------------------------------------


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def bind_inputs(func: Callable[..., Any], args: Any, kwargs: Any) -> dict[str, Any]:
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return {}
    return dict(bound.arguments)


def scalar_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs fit for the run's config: small values of parameters not named like secrets."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if _is_secret_name(name) or is_blob(value) or isinstance(value, (bytes, bytearray)):
            continue
        small = small_value(value)
        if small is not None:
            out[name] = small
    return out


def qualified(record: Mapping[str, Any]) -> str:
    tag = record.get("alias") or record.get("version") or "latest"
    where = "/".join(str(p) for p in (record.get("entity"), record.get("project")) if p)
    return f"{where}/{record['name']}:{tag}" if where else f"{record['name']}:{tag}"


def log_inputs(run: Any, inputs: Mapping[str, Any], owned: bool) -> list[dict[str, Any]]:
    """Scalar inputs to the config (when this call owns the run), blob inputs as uses."""
    used: list[dict[str, Any]] = []
    recorded: dict[str, Any] = {}
    offline = bool(getattr(run.settings, "_offline", False))
    _, run_base_dir = flyte_places()
    for name, value in inputs.items():
        for path, blob in blobs(value, name):
            uri = uri_of(blob)
            text = next(filter(None, map(read_text, record_places(uri, run_base_dir))), None)
            if text is None:
                continue  # not logged by a decorated task upstream
            record = json.loads(text)
            ref = qualified(record)
            applied = False
            if not offline:
                run.use_artifact(ref)
                applied = True
            recorded[path] = {"artifact": ref, "digest": record.get("digest"), "uri": uri}
            used.append(
                {**record, "direction": "input", "name": ref, "uri": uri, "applied": applied}
            )
    update: dict[str, Any] = {}
    if owned:
        scalars = scalar_inputs(inputs)
        if scalars:
            update[INPUTS_KEY] = scalars
    if recorded:
        update[INPUT_ARTIFACTS_KEY] = recorded
    if update:
        run.config.update(update, allow_val_change=True)
    return used


def apply_recorded_uses(run_path: str, *, api: Any = None) -> list[str]:
    """Declare the artifact uses an offline run recorded, once it was synced (``wandb sync``).

    ``run_path`` is ``entity/project/run_id``. Returns the artifacts declared as used.
    """
    import wandb

    api = api or wandb.Api()
    run = api.run(run_path)
    recorded = run.config.get(INPUT_ARTIFACTS_KEY) or {}
    done: list[str] = []
    for entry in recorded.values():
        artifact = api.artifact(entry["artifact"])
        run.use_artifact(artifact)
        done.append(entry["artifact"])
    return done


# -- model checkpoints ---------------------------------------------------------------------------


def log_model_checkpoint(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    best: bool = False,
    metadata: Mapping[str, Any] | None = None,
    run: Any = None,
) -> Any:
    """Log the checkpoint folder (or file) ``path`` as a ``model`` artifact of the current run.

    The new version gets the alias ``latest``, and ``best`` too when ``best=True``. A remote
    ``path`` (``s3://...``) is referenced, a local one uploaded (a checkpoint on the task's disk
    is gone when the task ends). ``name`` defaults to ``<run id>-model``. Returns the artifact.
    Raises :class:`WandbCloudExtraMissing` for an ``s3://`` or ``gs://`` path when the store's
    client library is not installed (``flyteplugins-wandb[aws]`` / ``[gcp]``).
    """
    import wandb

    run = run if run is not None else get_wandb_run()
    if run is None:
        raise RuntimeError(
            "log_model_checkpoint() needs a W&B run: call it inside a @wandb_init task or "
            "function, or pass run="
        )
    target = os.fspath(path)
    lib = missing_library(target) if "://" in target else None
    if lib is not None:
        raise WandbCloudExtraMissing(
            f"log_model_checkpoint({target!r}): {extra_hint([lib])}", name=lib.module
        )
    artifact = wandb.Artifact(
        name or artifact_name(str(run.id), "model"), type="model", metadata=dict(metadata or {})
    )
    if "://" in target:
        artifact.add_reference(target, checksum=True)
    elif os.path.isdir(target):
        artifact.add_dir(target)
    elif os.path.isfile(target):
        artifact.add_file(target)
    else:
        raise FileNotFoundError(f"log_model_checkpoint({target!r}): no such file or folder")
    aliases = ["latest", "best"] if best else ["latest"]
    logged = run.log_artifact(artifact, aliases=aliases)
    _show_in_tab(
        {
            "direction": "model",
            "name": f"{artifact.name} ({', '.join(aliases)})",
            "type": "model",
            "digest": artifact.digest,
            "uri": target,
        }
    )
    return logged


def _show_in_tab(item: dict[str, Any]) -> None:
    """List ``item`` in the W&B tab of the current task call, when it has one."""
    for ext in getattr(getattr(current_active(), "call", None), "extensions", ()):
        if getattr(ext, "tab", None) is not None:
            ext.tab.artifacts.append(item)
