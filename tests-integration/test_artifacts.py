"""Flyte's typed outputs as W&B artifacts by reference, and inputs as lineage: real local runs.

A two-task pipeline: ``produce`` returns a ``Dir`` (inside a dataclass), ``consume`` takes it.
Offline, what the real client recorded in the run files is read back; online, what the
project's test server stored (the artifact version, its manifest and the use edge).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _plugin_helpers import settled_runs
from _report_html import parse_tab, reports_of, run_named
from _report_tasks import make_file, pipeline
from servers import WandbTestServer

from flyteplugins.wandb import wandb_init
from flyteplugins.wandb._artifacts import (
    INPUT_ARTIFACTS_KEY,
    INPUTS_KEY,
    SIDECAR_SUFFIX,
    recorded_artifacts,
)
from flyteplugins.wandb._records import RunRecord

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


def test_a_file_in_a_tuple_output_and_the_int_beside_it(wandb_offline: Path) -> None:
    run_named(make_file, "hello", prefix="artifacts-tuple")
    [rec] = settled_runs(wandb_offline)
    [art] = artifact_records(rec)
    assert (art["name"], art["type"]) == ("make_file-o0", "flyte-file")
    [entry] = art["entries"]
    assert entry["size"] == len("hello")
    assert rec.summary["outputs/o1"] == len("hello")
    local = entry["ref"].removeprefix("file://")
    assert Path(local + SIDECAR_SUFFIX).is_file()


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
