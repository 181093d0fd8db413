"""Flyte's typed values in W&B: ``File``/``Dir`` outputs as artifacts by reference, small ones
in the summary, inputs in the config and as artifact uses (see docs/guide/report.md); where the
records of artifacts live; text I/O on local paths and Flyte's stores alike."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import json
import os
import re
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple

from ._state import current_active, get_wandb_run

INPUTS_KEY: Final = "flyte_inputs"
INPUT_ARTIFACTS_KEY: Final = "flyte_input_artifacts"
MAX_VALUE_CHARS: Final = 256  # longer strings (JSON of small values: x4) stay out of W&B
MAX_DEPTH: Final = 6
SECRETS: Final = ("key", "token", "secret", "password", "passwd", "credential", "auth")
COMMIT_WAIT_S: Final = 60  # online, a producer waits for its artifact (consumers need it)
SIDECAR_SUFFIX: Final = ".wandb-artifact.json"
RECORDS_FOLDER: Final = "wandb-artifacts"
_UNFIT: Final = object()
_NAME_BAD: Final = re.compile(r"[^A-Za-z0-9_.-]+")


class StoreLibrary(NamedTuple):
    """The client library W&B needs to reference objects of one store, and our extra for it."""

    scheme: str
    module: str
    package: str
    extra: str


STORE_LIBRARIES: Final = {
    "s3": StoreLibrary("s3", "boto3", "boto3", "aws"),
    "gs": StoreLibrary("gs", "google.cloud.storage", "google-cloud-storage", "gcp"),
}


def missing_library(uri: str) -> StoreLibrary | None:
    """The library W&B would need to reference ``uri`` when it is not installed, else ``None``."""
    lib = STORE_LIBRARIES.get(uri.split("://", 1)[0] if "://" in uri else "")
    try:
        return None if lib is None or importlib.util.find_spec(lib.module) else lib
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        return lib


def extra_hint(libs: Iterable[StoreLibrary]) -> str:
    """What W&B needs and the command that installs it, for the stores of ``libs``."""
    unique = sorted(set(libs), key=lambda lib: lib.extra)
    needs = " and ".join(f"{lib.package} for {lib.scheme}://" for lib in unique)
    extras = ",".join(lib.extra for lib in unique)
    return f"W&B needs {needs} references: pip install 'flyteplugins-wandb[{extras}]'"


def run_record_of(uri: str, run_base_dir: str) -> str:
    """The record of the object at ``uri`` in a Flyte run's storage (keyed by a hash of ``uri``)."""
    key = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:40]
    return f"{run_base_dir.rstrip('/')}/{RECORDS_FOLDER}/{key}.json"


def record_place(uri: str, raw_data_path: str | None, run_base_dir: str | None) -> str | None:
    """Where the record of the object at ``uri`` is written: beside it when Flyte wrote it (under
    ``raw_data_path``), else in the Flyte run's storage, never in a user's folder."""
    raw = (raw_data_path or "").removeprefix("file://").rstrip("/")
    if raw and uri.removeprefix("file://").rstrip("/").startswith(raw + "/"):
        return uri.rstrip("/") + SIDECAR_SUFFIX
    return run_record_of(uri, run_base_dir) if run_base_dir else None


def record_places(uri: str, run_base_dir: str | None) -> list[str]:
    """Where a task receiving the object at ``uri`` looks for its record, in order."""
    places = [run_record_of(uri, run_base_dir)] if run_base_dir else []
    return [*places, uri.rstrip("/") + SIDECAR_SUFFIX]


def _fs(uri: str) -> Any:
    import flyte.storage

    return flyte.storage.get_underlying_filesystem(path=uri)


def write_text(uri: str, text: str) -> None:
    """Write ``text`` at ``uri`` (a local path, ``file://`` or a store Flyte can write)."""
    if "://" not in uri or uri.startswith("file://"):
        os.makedirs(os.path.dirname(uri.removeprefix("file://")) or ".", exist_ok=True)
    _fs(uri).pipe_file(uri, text.encode())


def read_text(uri: str) -> str | None:
    """The text at ``uri``, or ``None`` when there is nothing there."""
    try:
        return bytes(_fs(uri).cat_file(uri)).decode()
    except FileNotFoundError:
        return None


def list_names(folder: str) -> list[str]:
    """The names of the files directly in ``folder`` (``[]`` when it does not exist)."""
    try:
        listed = _fs(folder).ls(folder, detail=False)
    except FileNotFoundError:
        return []
    return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in listed)


class WandbArtifactFailed(UserWarning):
    """Logging or using an artifact failed; the task and its run are not affected."""


class WandbCloudExtraMissing(ImportError):
    """W&B lacks the library of an ``s3://``/``gs://`` store: extras ``[aws]``/``[gcp]``."""


def _is_blob(value: Any) -> bool:
    from flyte.io import Dir, File

    return isinstance(value, (File, Dir))


def _uri(blob: Any) -> str:
    path = str(blob.path)
    return path if "://" in path else "file://" + os.path.abspath(path)


def _walk(value: Any, path: str, found: list[tuple[str, Any]], depth: int = 0) -> Any:
    """``value`` as JSON-able data (blobs as their URI; ``_UNFIT`` for anything else), adding
    ``(path, blob)`` to ``found`` for every Flyte blob inside (dataclasses, lists, dicts)."""
    if depth > MAX_DEPTH:
        return _UNFIT
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if _is_blob(value):
        found.append((path, value))
        return _uri(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items: Any = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return _UNFIT
    parts = {str(k): _walk(v, f"{path}.{k}", found, depth + 1) for k, v in items}
    if any(v is _UNFIT for v in parts.values()):
        return _UNFIT
    return list(parts.values()) if isinstance(value, (list, tuple)) else parts


def _small(value: Any) -> Any | None:
    """A value fit for a summary or config (a scalar, a short string, small JSON, not a blob)."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else None
    plain = _walk(value, "", [])
    try:
        text = json.dumps(plain, allow_nan=False)
    except (TypeError, ValueError):  # _UNFIT, NaN or infinity
        return None
    return plain if len(text) <= MAX_VALUE_CHARS * 4 and not _is_blob(value) else None


def artifact_name(task: str, output: str) -> str:
    """``<task>-<output>`` in the characters W&B allows in artifact names."""
    return _NAME_BAD.sub("-", f"{task.rsplit('.', 1)[-1]}-{output}").strip("-")[:128]


def output_alias(identity: Mapping[str, Any] | None, output: str) -> str | None:
    if not identity:
        return None
    text = f"flyte-{identity.get('run_name')}-{identity.get('action_name')}-{output}"
    return _NAME_BAD.sub("-", text)[:128]


def output_items(func: Callable[..., Any], result: Any) -> list[tuple[str, Any]]:
    """The task's outputs by Flyte name: ``o0``, ``o1``, ... (a ``NamedTuple``: its field names)."""
    if isinstance(result, tuple):
        if getattr(result, "_fields", None):
            return list(zip(result._fields, result, strict=True))  # type: ignore[attr-defined]
        try:
            hint = typing.get_type_hints(func).get("return")
        except Exception:
            hint = None
        if typing.get_origin(hint) is tuple:
            return [(f"o{i}", v) for i, v in enumerate(result)]
    return [("o0", result)]


def log_outputs(
    run: Any, task: str, func: Callable[..., Any], result: Any, identity: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Log the outputs of one call; return what was logged (for the report)."""
    logged, summary, unreferenced, libs = [], {}, [], []
    for name, value in output_items(func, result):
        found: list[tuple[str, Any]] = []
        _walk(value, name, found)
        for path, blob in found:
            lib = missing_library(uri := _uri(blob))
            if lib is None:
                logged.append(_log_blob(run, task, path, blob, identity))
            else:
                unreferenced.append(f"{path} ({uri})")
                libs.append(lib)
                summary["outputs/" + path] = uri
        if (small := _small(value)) is not None:
            summary["outputs/" + name] = small
    if summary:
        run.summary.update(summary)
    if unreferenced:
        msg = f"{task}: no W&B artifact logged for {', '.join(unreferenced)} (the URIs are in the "
        msg += f"run's summary): {extra_hint(libs)}"
        warnings.warn(msg, WandbArtifactFailed, stacklevel=2)
    return logged


def _places() -> tuple[str | None, str | None]:
    """The current task's raw data path and its Flyte run's storage (``None`` outside Flyte)."""
    import flyte

    tctx = flyte.ctx()
    raw = getattr(getattr(tctx, "raw_data_path", None), "path", None)
    base = getattr(tctx, "run_base_dir", None)
    return (str(raw) if raw else None), (str(base) if base else None)


def _log_blob(
    run: Any, task: str, output: str, blob: Any, identity: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One artifact referencing ``blob``, and the record that lets a consumer find it."""
    import wandb
    from flyte.io import Dir

    kind = "dir" if isinstance(blob, Dir) else "file"
    uri, name, alias = _uri(blob), artifact_name(task, output), output_alias(identity, output)
    metadata = {"flyte": {**(identity or {}), "output": output, "uri": uri, "kind": kind}}
    artifact = wandb.Artifact(name, type=f"flyte-{kind}", metadata=metadata)
    try:
        artifact.add_reference(uri, checksum=True)
    except Exception as exc:  # e.g. no credentials to read the store
        msg = f"artifact {name}: no checksums of {uri} here ({exc}); referenced without them"
        warnings.warn(msg, WandbArtifactFailed, stacklevel=3)
        artifact = wandb.Artifact(name, type=f"flyte-{kind}", metadata=metadata)
        artifact.add_reference(uri, checksum=False)
    run.log_artifact(artifact, aliases=[alias] if alias else None)
    offline = getattr(run.settings, "_offline", False)  # online, consumers need the version:
    version = None if offline else artifact.wait(timeout=COMMIT_WAIT_S).version
    record = {"entity": run.entity or None, "project": run.project, "name": name,
              "alias": alias, "version": version, "digest": artifact.digest,
              "type": artifact.type, "uri": uri}  # fmt: skip
    place = record_place(uri, *_places())
    if place is not None:
        write_text(place, json.dumps(record))
    return {**record, "direction": "output"}


def scalar_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs fit for the run's config: small values of parameters not named like secrets."""
    kept = {k: _small(v) for k, v in inputs.items() if not any(w in k.lower() for w in SECRETS)}
    return {k: v for k, v in kept.items() if v is not None}


def log_inputs(
    run: Any, func: Callable[..., Any], args: Any, kwargs: Any, owned: bool
) -> list[dict[str, Any]]:
    """The call's scalar inputs to the config (when it owns the run), blob inputs as uses."""
    try:
        inputs = inspect.signature(func).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        inputs = {}
    used: list[dict[str, Any]] = []
    recorded: dict[str, Any] = {}
    online = not getattr(run.settings, "_offline", False)
    run_base_dir = _places()[1]
    for name, value in inputs.items():
        found: list[tuple[str, Any]] = []
        _walk(value, name, found)
        for path, blob in found:
            uri = _uri(blob)
            text = next(filter(None, map(read_text, record_places(uri, run_base_dir))), None)
            if text is None:
                continue  # not logged by a decorated task upstream
            record = json.loads(text)
            where = "/".join(str(p) for p in (record.get("entity"), record.get("project")) if p)
            tag = record.get("alias") or record.get("version") or "latest"
            ref = f"{where}/{record['name']}:{tag}".lstrip("/")
            if online:
                run.use_artifact(ref)
            recorded[path] = {"artifact": ref, "digest": record.get("digest"), "uri": uri}
            used.append(
                {**record, "direction": "input", "name": ref, "uri": uri, "applied": online}
            )
    update = {INPUTS_KEY: scalar_inputs(inputs) if owned else {}, INPUT_ARTIFACTS_KEY: recorded}
    if update := {key: value for key, value in update.items() if value}:
        run.config.update(update, allow_val_change=True)
    return used


def apply_recorded_uses(run_path: str, *, api: Any = None) -> list[str]:
    """Declare the artifact uses an offline run recorded, once it was synced (``wandb sync``);
    ``run_path`` is ``entity/project/run_id``. Returns the artifacts declared as used."""
    import wandb

    api = api or wandb.Api()
    run = api.run(run_path)
    done = [entry["artifact"] for entry in (run.config.get(INPUT_ARTIFACTS_KEY) or {}).values()]
    for ref in done:
        run.use_artifact(api.artifact(ref))
    return done


def log_model_checkpoint(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    best: bool = False,
    metadata: Mapping[str, Any] | None = None,
    run: Any = None,
) -> Any:
    """Log the checkpoint folder or file ``path`` (remote: referenced; local: uploaded) as a
    ``model`` artifact of the current run, aliased ``latest`` (and ``best``); returns it. Raises
    :class:`WandbCloudExtraMissing` for an ``s3://``/``gs://`` path without the store's library."""
    import wandb

    run = run if run is not None else get_wandb_run()
    if run is None:
        raise RuntimeError(
            "log_model_checkpoint() needs a W&B run: call it inside a @wandb_init task or "
            "function, or pass run="
        )
    target = os.fspath(path)
    lib = missing_library(target)
    if lib is not None:
        raise WandbCloudExtraMissing(
            f"log_model_checkpoint({target!r}): {extra_hint([lib])}", name=lib.module
        )
    artifact = wandb.Artifact(
        name or artifact_name(str(run.id), "model"), type="model", metadata=dict(metadata or {})
    )
    if "://" in target:
        artifact.add_reference(target, checksum=True)
    elif os.path.exists(target):
        (artifact.add_dir if os.path.isdir(target) else artifact.add_file)(target)
    else:
        raise FileNotFoundError(f"log_model_checkpoint({target!r}): no such file or folder")
    aliases = ["latest", "best"] if best else ["latest"]
    logged = run.log_artifact(artifact, aliases=aliases)
    label = f"{artifact.name} ({', '.join(aliases)})"
    item = {"direction": "model", "name": label, "type": "model", "digest": artifact.digest,
            "uri": target}  # fmt: skip
    for ext in getattr(getattr(current_active(), "call", None), "extensions", ()):
        if getattr(ext, "tab", None) is not None:  # the call's W&B tab lists it
            ext.tab.artifacts.append(item)
    return logged
