"""The demo (README's first command) end to end: a subprocess, W&B offline, into a tmp folder.

The facts of its summary are checked against what W&B recorded in the ``.wandb`` files, read here
independently of the demo's own reading.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from flyteplugins.wandb._records import read_runs

DEMO = Path(__file__).resolve().parents[1] / "demo" / "pipeline.py"
TRIALS = 6
EPOCHS = 60


def _demo_env() -> dict[str, str]:
    # no W&B key, server or run of the test process may reach the demo: it needs none
    return {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        env=_demo_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = _run("--output", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, proc.stdout, json.loads((out / "summary.json").read_text())


@pytest.mark.timeout(360)
def test_every_run_recorded_and_finished(demo: tuple[Path, str, dict[str, Any]]) -> None:
    out, stdout, summary = demo
    assert summary["problems"] == []
    recs = read_runs(out / "wandb")
    assert sorted(r.run_id or "" for r in recs) == sorted(r["id"] for r in summary["runs"])
    assert all(r.exit_code == 0 for r in recs)
    by_job: dict[str | None, list[Any]] = {}
    for r in recs:
        by_job.setdefault(r.job_type, []).append(r)
    [pipeline_owner] = by_job["pipeline"]
    [train] = by_job["train"]
    assert len(train.metric("loss")) == EPOCHS
    assert train.group is None and pipeline_owner.group is None
    # the torchrun step: run_mode="new" gave each rank its run in one group ...
    ranks = {r.run_id.rsplit("-rank-", 1)[1]: r for r in recs if r.run_id and "-rank-" in r.run_id}
    assert sorted(ranks) == ["0", "1"]
    assert {r.group for r in ranks.values()} == {str(ranks["0"].run_id).rsplit("-rank-", 1)[0]}
    assert [set(ranks[k].metric("rank")) for k in ("0", "1")] == [{0}, {1}]
    # ... and under auto/global only rank 0 wrote, into the pipeline's run (a second writer)
    joined = [r for r in recs if r.run_id == pipeline_owner.run_id and r is not pipeline_owner]
    assert [set(r.metric("rank")) for r in joined] == [{0}]
    for row in summary["runs"]:
        assert row["mode"] == "offline" and row["state"] == "finished"
    assert f"wandb sync {out / 'wandb'}" in stdout


@pytest.mark.timeout(360)
def test_sweep_best_trial_is_the_recorded_best(demo: tuple[Path, str, dict[str, Any]]) -> None:
    out, stdout, summary = demo
    trials = [r for r in read_runs(out / "wandb") if r.group == summary["sweep_id"]]
    assert len(trials) == TRIALS
    assert len({(r.config["lr"], r.config["hidden"]) for r in trials}) == TRIALS
    best = summary["best_trial"]
    scores = {r.run_id: min(r.metric("val_loss")) for r in trials}
    assert best["id"] == min(scores, key=lambda k: scores[k])
    [rec] = [r for r in trials if r.run_id == best["id"]]
    assert best["config"] == {"lr": rec.config["lr"], "hidden": rec.config["hidden"]}
    assert f"best trial {best['id']}" in stdout
    # the summary labels the sweep's runs as trials, not as a torchrun job's ranks
    roles = {r["role"] for r in summary["runs"] if r["group"] == summary["sweep_id"]}
    assert roles == {"sweep trial"}


@pytest.mark.timeout(360)
def test_links_plot_and_log_download(demo: tuple[Path, str, dict[str, Any]]) -> None:
    out, _, summary = demo
    ids = {r["id"] for r in summary["runs"]}
    links = {link["task"]: link["url"] for link in summary["links"]}
    assert set(links) == {"pipeline", "train", "evaluate", "distributed", "tune"}
    if all("/runs/" not in url and "/groups/" not in url for url in links.values()):
        # offline without an entity anywhere: every link opens the W&B app, never a URL
        # without an entity (the tasks print their runs' URLs instead)
        assert len({link["url"] for link in summary["links"]}) == 1
    else:
        for task in ("pipeline", "train", "evaluate"):
            assert links[task].rsplit("/runs/", 1)[1] in ids
        groups = [link["url"] for link in summary["links"] if "/groups/" in link["url"]]
        assert [g.rsplit("/", 1)[1] for g in groups] == [
            r["group"] for r in summary["runs"] if r["id"].endswith("-rank-0")
        ]
    plot = Path(summary["plot"])
    assert plot.parent == out and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [download] = [Path(p) for p in summary["downloads"]]
    assert download.is_relative_to(out)
    assert json.loads((download / "download.json").read_text())["failed"] == {}
    assert (download / "history.jsonl").read_text().count("\n") == EPOCHS


@pytest.mark.timeout(360)
def test_reports_show_the_wandb_tab_and_the_artifact_lineage(
    demo: tuple[Path, str, dict[str, Any]],
) -> None:
    from _report_html import parse_tab

    from flyteplugins.wandb._artifacts import INPUT_ARTIFACTS_KEY
    from flyteplugins.wandb._records import recorded_artifacts

    out, stdout, summary = demo
    reports = {task: Path(p) for task, p in summary["reports"].items()}
    assert set(reports) == {"train", "evaluate", "tune"}
    assert all(p.is_relative_to(out) for p in reports.values())
    recs = {r.job_type: r for r in read_runs(out / "wandb") if r.job_type in ("train", "eval")}
    train = parse_tab(reports["train"].read_text())
    assert train.runs[1][0] == recs["train"].run_id
    assert train.chart("loss").logged == EPOCHS == len(train.chart("loss").points)
    arts = {a["name"]: a for a in recorded_artifacts(recs["train"].path)}
    assert arts["spirals-mlp"]["type"] == "model"
    assert arts["spirals-mlp"]["aliases"] == ["best", "latest"]
    model_dir = arts["train-o0"]
    assert {e["path"] for e in model_dir["entries"]} == {"model.pt", "config.json"}
    assert all(e["ref"].startswith("file://") for e in model_dir["entries"])  # by reference
    used = recs["eval"].config[INPUT_ARTIFACTS_KEY]["model"]
    assert used["digest"] == model_dir["digest"]
    evaluate = parse_tab(reports["evaluate"].read_text())
    assert [r[0] for r in evaluate.table_after("Artifacts")[1:]] == ["input"]
    tune = reports["tune"].read_text()
    assert tune.count('class="fpw-best"') == 1 and summary["best_trial"]["id"] in tune
    assert "Flyte reports with a W&B tab" in stdout


def _demo_module() -> ModuleType:
    """demo/pipeline.py imported in this process: its argument checks need no process of their
    own (the script's ``main(argv)`` is what its ``__main__`` runs)."""
    spec = importlib.util.spec_from_file_location("demo_pipeline", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_foreign_output_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert _demo_module().main(["--output", str(tmp_path)]) == 2
    assert "is not empty and was not written by this demo" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agents", "21"], "--agents 21: allowed values are 1 to 20"),
        (["--trials", "0"], "--trials 0: allowed values are at least 1"),
    ],
)
def test_bad_arguments_fail_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        _demo_module().main(["--output", str(tmp_path / "out"), *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
