"""Where artifact records go and which store needs which extra: the pure rules, table-driven.

What the real client records (artifacts by reference, uses, the warning without a store's
library) is checked by tests-integration/test_artifacts.py with real Flyte and wandb runs.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb._artifacts import (
    RECORDS_FOLDER,
    SIDECAR_SUFFIX,
    STORE_LIBRARIES,
    StoreLibrary,
    extra_hint,
    missing_library,
    record_place,
    record_places,
    run_record_of,
)

RAW = "s3://bucket/raw/run-1"
BASE = "s3://bucket/meta/run-1"


@pytest.mark.parametrize(
    ("uri", "raw", "base", "where"),
    [
        (f"{RAW}/ab/data", RAW, BASE, "beside"),  # Flyte wrote it: beside the object
        (f"{RAW}/ab/data/", RAW + "/", BASE, "beside"),
        ("file:///tmp/flyte/raw_data/r/x/f.csv", "/tmp/flyte/raw_data/r", "/m/r", "beside"),
        ("file:///home/me/data/f.csv", "/tmp/flyte/raw_data/r", "/m/r", "run"),  # a user's file
        ("s3://my-bucket/data.parquet", RAW, BASE, "run"),  # a user's own bucket
        (f"{RAW}x/data", RAW, BASE, "run"),  # a sibling prefix is not inside
        ("file:///home/me/f.csv", None, "/m/r", "run"),
        ("file:///home/me/f.csv", None, None, None),  # outside Flyte: nowhere
    ],
)
def test_record_place(uri: str, raw: str | None, base: str | None, where: str | None) -> None:
    place = record_place(uri, raw, base)
    expected = {
        "beside": uri.rstrip("/") + SIDECAR_SUFFIX,
        "run": run_record_of(uri, base) if base else None,
        None: None,
    }[where]
    assert place == expected


@given(st.text(min_size=1, max_size=80), st.sampled_from(["/m/r", "s3://b/m/r", "s3://b/m/r/"]))
def test_a_record_written_in_the_run_is_where_a_consumer_looks_first(uri: str, base: str) -> None:
    place = run_record_of(uri, base)
    assert place.startswith(base.rstrip("/") + f"/{RECORDS_FOLDER}/") and place.endswith(".json")
    assert record_places(uri, base)[0] == place
    assert record_places(uri, None) == [uri.rstrip("/") + SIDECAR_SUFFIX]


def test_one_uri_one_record_and_a_trailing_slash_is_the_same_object() -> None:
    assert run_record_of("s3://b/d/", "/m") == run_record_of("s3://b/d", "/m")
    assert run_record_of("s3://b/d1", "/m") != run_record_of("s3://b/d2", "/m")


@pytest.mark.parametrize(
    ("uri", "module"),
    [
        ("s3://b/k", "boto3"),
        ("gs://b/k", "google.cloud.storage"),
        ("file:///tmp/x", None),
        ("/tmp/x", None),
        ("abfs://c/k", None),  # W&B has no handler of its own: nothing to install
    ],
)
def test_missing_library(monkeypatch: pytest.MonkeyPatch, uri: str, module: str | None) -> None:
    for name in ("boto3", "google.cloud.storage"):
        monkeypatch.setitem(sys.modules, name, None)  # as where they are not installed
    lib = missing_library(uri)
    assert (lib.module if lib else None) == module


def test_an_installed_library_is_not_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STORE_LIBRARIES, "s3", StoreLibrary("s3", "json", "json", "aws"))
    assert missing_library("s3://b/k") is None


@pytest.mark.parametrize(
    ("schemes", "words"),
    [
        (["s3"], "W&B needs boto3 for s3:// references: pip install 'flyteplugins-wandb[aws]'"),
        (["gs"], "google-cloud-storage for gs:// references: pip install 'flyteplugins-wandb[gcp"),
        (["gs", "s3", "s3"], "boto3 for s3:// and google-cloud-storage for gs:// references: "
         "pip install 'flyteplugins-wandb[aws,gcp]'"),
    ],
)  # fmt: skip
def test_extra_hint(schemes: list[str], words: str) -> None:
    assert words in extra_hint(STORE_LIBRARIES[s] for s in schemes)
