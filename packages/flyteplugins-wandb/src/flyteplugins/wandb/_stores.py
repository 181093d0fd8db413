"""Where artifact records (which W&B version describes a Flyte object) live, the stores W&B
needs a client library for, and text I/O on local paths and stores alike."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

SIDECAR_SUFFIX: Final = ".wandb-artifact.json"
RECORDS_FOLDER: Final = "wandb-artifacts"


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
