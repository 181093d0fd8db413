"""Where artifact records live, and the stores W&B needs a client library for.

A small record says which W&B artifact version describes a Flyte object, so that a later task
receiving the object finds it: ``<uri>.wandb-artifact.json`` beside an object Flyte wrote (under
the task's raw data path), else ``<run_base_dir>/wandb-artifacts/<hash of uri>.json`` in the
Flyte run's own storage, never in a folder of the user's. ``s3://`` and ``gs://`` references need
the store's client library (the ``[aws]`` / ``[gcp]`` extras). Text is read and written through
``flyte.storage`` (local paths and object stores alike).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

SIDECAR_SUFFIX: Final = ".wandb-artifact.json"

RECORDS_FOLDER: Final = "wandb-artifacts"
"""The folder of artifact records in a Flyte run's storage (``run_base_dir``)."""


@dataclass(frozen=True)
class StoreLibrary:
    """The client library W&B needs to reference objects of one store, and our extra for it."""

    scheme: str
    module: str
    package: str
    extra: str


STORE_LIBRARIES: Final = {
    lib.scheme: lib
    for lib in (
        StoreLibrary("s3", "boto3", "boto3", "aws"),
        StoreLibrary("gs", "google.cloud.storage", "google-cloud-storage", "gcp"),
    )
}
"""The stores whose references need a library (W&B's own ``wandb[aws]``/``wandb[gcp]``)."""


def missing_library(uri: str) -> StoreLibrary | None:
    """The library W&B would need to reference ``uri`` when it is not installed, else ``None``."""
    lib = STORE_LIBRARIES.get(uri.split("://", 1)[0] if "://" in uri else "")
    if lib is None:
        return None
    try:
        found = importlib.util.find_spec(lib.module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        found = False
    return None if found else lib


def extra_hint(libs: Iterable[StoreLibrary]) -> str:
    """What W&B needs and the command that installs it, for the stores of ``libs``."""
    unique = sorted(set(libs), key=lambda lib: lib.extra)
    needs = " and ".join(f"{lib.package} for {lib.scheme}://" for lib in unique)
    extras = ",".join(lib.extra for lib in unique)
    return f"W&B needs {needs} references: pip install 'flyteplugins-wandb[{extras}]'"


def _local(uri: str) -> str | None:
    return uri[len("file://") :] if uri.startswith("file://") else None


def sidecar_of(uri: str) -> str:
    return uri.rstrip("/") + SIDECAR_SUFFIX


def _bare(uri: str) -> str:
    return uri.removeprefix("file://").rstrip("/")


def run_record_of(uri: str, run_base_dir: str) -> str:
    """The record of the object at ``uri`` in a Flyte run's storage (keyed by a hash of ``uri``)."""
    key = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:40]
    return f"{run_base_dir.rstrip('/')}/{RECORDS_FOLDER}/{key}.json"


def record_place(uri: str, raw_data_path: str | None, run_base_dir: str | None) -> str | None:
    """Where the record of the object at ``uri`` is written: beside the object when Flyte wrote
    it (under the task's ``raw_data_path``), else in the Flyte run's storage; ``None`` when
    neither is known (outside Flyte)."""
    if raw_data_path and _bare(uri).startswith(_bare(raw_data_path) + "/"):
        return sidecar_of(uri)
    if run_base_dir:
        return run_record_of(uri, run_base_dir)
    return None


def record_places(uri: str, run_base_dir: str | None) -> list[str]:
    """Where a task receiving the object at ``uri`` looks for its record, in order."""
    places = [run_record_of(uri, run_base_dir)] if run_base_dir else []
    return [*places, sidecar_of(uri)]


def flyte_places() -> tuple[str | None, str | None]:
    """The current task's raw data path and its Flyte run's storage (``None`` outside Flyte)."""
    import flyte

    tctx = flyte.ctx()
    if not tctx:
        return None, None
    raw = getattr(getattr(tctx, "raw_data_path", None), "path", None)
    base = getattr(tctx, "run_base_dir", None)
    return (str(raw) if raw else None), (str(base) if base else None)


def write_text(uri: str, text: str) -> None:
    """Write ``text`` at ``uri`` (a local path, ``file://`` or a store Flyte can write)."""
    local = _local(uri) if "://" in uri else uri
    if local is not None:
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        with open(local, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    import flyte.storage

    fs = flyte.storage.get_underlying_filesystem(path=uri)
    fs.pipe_file(uri, text.encode())


def read_text(uri: str) -> str | None:
    """The text at ``uri``, or ``None`` when there is nothing there."""
    local = _local(uri) if "://" in uri else uri
    try:
        if local is not None:
            with open(local, encoding="utf-8") as fh:
                return fh.read()
        import flyte.storage

        fs = flyte.storage.get_underlying_filesystem(path=uri)
        if not fs.exists(uri):
            return None
        return bytes(fs.cat_file(uri)).decode()
    except FileNotFoundError:
        return None


def list_names(folder: str) -> list[str]:
    """The names of the files directly in ``folder`` (``[]`` when it does not exist)."""
    local = _local(folder) if "://" in folder else folder
    try:
        if local is not None:
            return sorted(os.listdir(local))
        import flyte.storage

        fs = flyte.storage.get_underlying_filesystem(path=folder)
        if not fs.exists(folder):
            return []
        return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False))
    except FileNotFoundError:
        return []
