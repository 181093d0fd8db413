"""Flyte's typed outputs as W&B artifacts by reference, and inputs as lineage: real local runs.

A two-task pipeline: ``produce`` returns a ``Dir`` (inside a dataclass), ``consume`` takes it.
Offline, what the real client recorded in the run files is read back; online, what the
project's test server stored (the artifact version, its manifest and the use edge).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import flyte
import pytest
from _plugin_helpers import settled_runs
from _report_html import parse_tab, reports_of, run_named
from _report_tasks import make_file, pipeline
from flyte.io import File
from servers import WandbTestServer

from flyteplugins.wandb import log_model_checkpoint, wandb_init
from flyteplugins.wandb._artifacts import (
    INPUT_ARTIFACTS_KEY,
    INPUTS_KEY,
    SIDECAR_SUFFIX,
    WandbArtifactFailed,
    WandbCloudExtraMissing,
)
from flyteplugins.wandb._records import RunRecord, recorded_artifacts

ROWS = 5


def artifact_records(rec: RunRecord) -> list[dict[str, Any]]:
    """The artifacts one run file records (the client writes them offline too)."""
    return recorded_artifacts(rec.path)


def _by_role(root: Path) -> tuple[RunRecord, RunRecord]:
    recs = settled_runs(root)
    [producer] = [r for r in recs if artifact_records(r)]
    [consumer] = [r for r in recs if INPUT_ARTIFACTS_KEY in r.config]
    return producer, consumer


def _dir_files(uri: str) -> dict[str, int]:
    root = Path(uri.removeprefix("file://"))
    return {
        p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
    }


def test_offline_the_output_dir_is_referenced_and_the_consumer_records_its_use(
    wandb_offline: Path,
) -> None:
    name, files = run_named(pipeline, ROWS, prefix="artifacts-offline")
    assert files == 2
    producer, consumer = _by_role(wandb_offline)
    [art] = artifact_records(producer)
    assert (art["name"], art["type"]) == ("produce-o0.data", "flyte-dir")
    meta = art["metadata"]["flyte"]
    assert meta["run_name"] == name and meta["output"] == "o0.data" and meta["kind"] == "dir"
    uri = meta["uri"]
    assert uri.startswith("file://")
    # by reference: one entry per file of the Dir, pointing into Flyte's raw data, with checksums
    entries = {e["path"]: e for e in art["entries"]}
    assert {p: e["size"] for p, e in entries.items()} == _dir_files(uri)
    for path, entry in entries.items():
        assert entry["ref"] == f"{uri}/{path}"
        assert entry["digest"]  # md5 of the file, computed by the client
    assert f"flyte-{name}-{meta['action_name']}-o0.data" in art["aliases"]
    # scalars and small dataclasses returned: in the producer's summary
    assert producer.summary["outputs/o0"] == {"data": uri, "rows": ROWS, "note": "two files"}
    # the consumer: its use of that version (name and digest), and its scalar inputs
    used = consumer.config[INPUT_ARTIFACTS_KEY]["prepared.data"]
    assert used["digest"] == art["digest"] and used["uri"] == uri
    assert used["artifact"].startswith("local/artifact-tests/produce-o0.data:flyte-")
    inputs = consumer.config[INPUTS_KEY]
    assert inputs["lr"] == 0.01
    assert "api_token" not in inputs  # never a value of a parameter named like a secret
    assert "not-a-real-token" not in json.dumps(consumer.config)
    # the report tabs list the artifact on both sides
    reports = [parse_tab(h) for h in reports_of(name).values()]
    listed = [row for t in reports for row in t.table_after("Artifacts")[1:]]
    assert sorted(row[0] for row in listed) == ["input", "output"]
    assert {row[3] for row in listed} == {art["digest"]}


def test_a_file_in_a_tuple_output_and_the_int_beside_it(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = wandb_offline / "user-folder"  # make_file writes its file into TMPDIR
    user.mkdir()
    monkeypatch.setenv("TMPDIR", str(user))
    run_named(make_file, "hello", prefix="artifacts-tuple")
    [rec] = settled_runs(wandb_offline)
    [art] = artifact_records(rec)
    assert (art["name"], art["type"]) == ("make_file-o0", "flyte-file")
    [entry] = art["entries"]
    assert entry["size"] == len("hello")
    assert entry["ref"] == f"file://{user}/out-hello.txt"
    assert rec.summary["outputs/o1"] == len("hello")
    # the record of the artifact stays out of the user's folder
    assert sorted(p.name for p in user.iterdir()) == ["out-hello.txt"]


# -- a local file of the user's, passed from task to task ----------------------------------------

file_env = flyte.TaskEnvironment(name="artifact_file_tests")


@wandb_init(project="artifact-tests", entity="local", run_mode="new", log_outputs=True)
@file_env.task
async def write_user_file(folder: str) -> File:
    path = Path(folder) / "features.csv"
    path.write_text("a,b\n1,2\n")
    return await File.from_local(str(path))


@wandb_init(project="artifact-tests", entity="local", run_mode="new", log_inputs=True)
@file_env.task
async def read_user_file(features: File) -> int:
    async with features.open("rb") as fh:
        return len(await fh.read())


@wandb_init(project="artifact-tests", entity="local")
@file_env.task
async def user_file_pipeline(folder: str) -> int:
    return await read_user_file(await write_user_file(folder))


def test_a_users_file_keeps_its_folder_clean_and_its_lineage(wandb_offline: Path) -> None:
    user = wandb_offline / "user-data"
    user.mkdir()
    _, size = run_named(user_file_pipeline, str(user), prefix="artifacts-user-file")
    assert size == len("a,b\n1,2\n")
    assert sorted(p.name for p in user.iterdir()) == ["features.csv"]
    assert not list(user.rglob("*" + SIDECAR_SUFFIX))
    producer, consumer = _by_role(wandb_offline)
    [art] = artifact_records(producer)
    [entry] = art["entries"]
    assert entry["ref"] == f"file://{user}/features.csv"
    # the consumer found the record (in the Flyte run's storage) and recorded its use
    used = consumer.config[INPUT_ARTIFACTS_KEY]["features"]
    assert used["digest"] == art["digest"] and used["uri"] == entry["ref"]


# -- objects in cloud stores without the store's client library ----------------------------------


@wandb_init(project="artifact-tests", entity="local", log_outputs=True)
@file_env.task
async def return_stored(uri: str) -> File:
    return File(path=uri)


@pytest.fixture
def no_store_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 and the GCS client as W&B sees them where they are not installed (import fails)."""
    for module in ("boto3", "google.cloud.storage"):
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(
    ("uri", "extra", "package"),
    [
        ("s3://no-bucket/data/train.csv", "aws", "boto3"),
        ("gs://no-bucket/data/train.csv", "gcp", "google-cloud-storage"),
    ],
)
def test_a_cloud_output_without_its_library_warns_once_naming_the_extra(
    wandb_offline: Path, no_store_libraries: None, uri: str, extra: str, package: str
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, out = run_named(return_stored, uri, prefix="artifacts-cloud")
    assert str(out.path) == uri  # the task's output is untouched
    ours = [w for w in caught if issubclass(w.category, WandbArtifactFailed)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    text = str(ours[0].message)
    assert f"pip install 'flyteplugins-wandb[{extra}]'" in text and package in text
    assert uri in text and "o0" in text
    [rec] = settled_runs(wandb_offline)
    assert artifact_records(rec) == []
    assert rec.summary["outputs/o0"] == uri and rec.finished and rec.exit_code == 0


def test_a_cloud_checkpoint_without_its_library_fails_naming_the_extra(
    wandb_offline: Path, no_store_libraries: None
) -> None:
    import wandb

    with wandb.init(project="artifact-tests", mode="offline") as run:
        with pytest.raises(WandbCloudExtraMissing) as info:
            log_model_checkpoint("s3://no-bucket/ckpt/step-10", run=run)
        run.log({"after": 1})  # the run goes on
    text = str(info.value)
    assert "s3://no-bucket/ckpt/step-10" in text
    assert "pip install 'flyteplugins-wandb[aws]'" in text and "boto3" in text
    assert isinstance(info.value, ImportError) and info.value.name == "boto3"
    [rec] = settled_runs(wandb_offline)
    assert artifact_records(rec) == [] and rec.metric("after") == [1]


def test_the_cloud_extras_install_what_wandb_needs() -> None:
    from importlib.metadata import metadata

    from packaging.requirements import Requirement

    meta = metadata("flyteplugins-wandb")
    assert {"aws", "gcp"} <= set(meta.get_all("Provides-Extra") or [])
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    for extra in ("aws", "gcp"):  # wandb's own extras: boto3, google-cloud-storage
        [req] = [r for r in requires if r.marker and r.marker.evaluate({"extra": extra})]
        assert (req.name, req.extras) == ("wandb", {extra})


def test_the_options_are_refused_on_a_plain_function() -> None:
    with pytest.raises(TypeError, match=r"log_outputs=True on '.*\.f': these apply to Flyte tasks"):

        @wandb_init(log_outputs=True)
        def f() -> None: ...


def test_a_bad_option_value_is_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"report='yes' \(str\): expected True or False"):
        wandb_init(report="yes")  # type: ignore[arg-type]


@pytest.mark.online
def test_online_the_server_stores_the_version_and_the_use_edge(
    wandb_online: WandbTestServer,
) -> None:
    name, files = run_named(pipeline, ROWS, prefix="artifacts-online")
    assert files == 2
    versions = [
        v for v in wandb_online.get_json("/_test/artifacts") if v["collection"] == "produce-o0.data"
    ]
    [version] = [v for v in versions if any(name in a for a in v["aliases"])]
    assert version["state"] == "COMMITTED" and version["type"] == "flyte-dir"
    contents = version["manifest"]["contents"]
    uri = json.loads(version["metadata"])["flyte"]["uri"]
    assert {p: e["size"] for p, e in contents.items()} == _dir_files(uri)
    assert all(e["ref"] == f"{uri}/{p}" and e["digest"] for p, e in contents.items())
    # producer -> artifact -> consumer
    runs = {r["name"]: r for r in wandb_online.runs("local", "artifact-tests")}
    assert version["created_by"] in runs
    # a version with the same files (digest) is the same version: other tests' consumers too
    [consumer] = [u for u in version["used_by"] if name in u]
    consumer_run = runs[consumer.rsplit("/", 1)[1]]
    assert (
        consumer_run["config"][INPUT_ARTIFACTS_KEY]["prepared.data"]["digest"]
        == (version["digest"])
    )
    # no byte of the Dir went to the server: only the manifest was uploaded
    puts = [r for r in wandb_online.requests() if r["method"] == "PUT"]
    assert not any("train.csv" in r["path"] or "meta.txt" in r["path"] for r in puts)


@pytest.mark.online
def test_offline_uses_are_applied_after_wandb_sync(wandb_online: WandbTestServer) -> None:
    import os
    import subprocess
    import sys

    from flyteplugins.wandb import apply_recorded_uses, wandb_config

    name, _ = run_named(
        pipeline, ROWS, prefix="artifacts-sync", custom_context=wandb_config(mode="offline")
    )
    folders = sorted(Path(os.environ["WANDB_DIR"]).glob(f"wandb/offline-run-*-{name}-*"))
    assert len(folders) >= 2
    wandb_cli = Path(sys.executable).parent / "wandb"
    proc = subprocess.run(
        [str(wandb_cli), "sync", *map(str, folders)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [consumer] = [
        r
        for r in wandb_online.runs("local", "artifact-tests")
        if name in r["name"] and INPUT_ARTIFACTS_KEY in r["config"]
    ]
    done = apply_recorded_uses(f"local/artifact-tests/{consumer['name']}")
    [used] = done
    assert used.startswith("local/artifact-tests/produce-o0.data:flyte-")
    [version] = [
        v for v in wandb_online.get_json("/_test/artifacts") if any(name in a for a in v["aliases"])
    ]
    assert f"local/artifact-tests/{consumer['name']}" in version["used_by"]
