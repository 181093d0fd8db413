"""Where ``download_logs`` writes: a folder the user chose, or a documented default one, said
out loud, and removed on request (``remove_downloaded_logs``).

Real local Flyte runs with the real client offline; the downloads are read back from disk.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import flyte
import pytest
from _plugin_helpers import run_local

from flyteplugins.wandb import (
    get_wandb_run,
    remove_downloaded_logs,
    wandb_config,
    wandb_init,
    wandb_sweep,
)
from flyteplugins.wandb_sweeps import default_download_dir, download_run, run_agent

env = flyte.TaskEnvironment(name="download_folders")


def _rows(folder: Path) -> list[float]:
    lines = (folder / "history.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


@wandb_init(download_logs=True)
@env.task
def default_folder(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"loss": float(i)})
    return str(run.id)


@wandb_init
@env.task
async def from_context(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"loss": float(i)})
    return str(run.id)


@wandb_init
def objective() -> None:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": run.config["lr"]})


@pytest.fixture
def tmpdir_here(wandb_offline: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary folder, inside this test's folder (the default downloads go there)."""
    (wandb_offline / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(wandb_offline / "tmp"))
    return wandb_offline / "tmp"


def test_default_folder_is_documented_printed_and_removed_on_request(
    tmpdir_here: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert default_download_dir() == tmpdir_here / "wandb_runs"
    run_id = run_local(default_folder, 3)
    folder = tmpdir_here / "wandb_runs" / f"wandb-run-{run_id}"
    assert _rows(folder) == [0.0, 1.0, 2.0]
    assert f"W&B logs of run {run_id} downloaded to {folder}" in capfd.readouterr().err
    mine = tmpdir_here / "wandb_runs" / "not-a-download"
    mine.mkdir()
    (mine / "keep.txt").write_text("the user's")
    assert remove_downloaded_logs() == [folder]
    assert not folder.exists() and (mine / "keep.txt").read_text() == "the user's"
    assert remove_downloaded_logs() == []


@pytest.mark.parametrize("as_path", [False, True])
def test_a_folder_given_in_the_decorator(
    tmpdir_here: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], as_path: bool
) -> None:
    target = tmp_path / "my-logs"
    chosen = wandb_init(download_logs=target if as_path else str(target))

    @chosen
    @env.task
    def train(steps: int) -> str:
        run = get_wandb_run()
        assert run is not None
        for i in range(steps):
            run.log({"loss": float(i)})
        return str(run.id)

    run_id = run_local(train, 2)
    assert _rows(target / f"wandb-run-{run_id}") == [0.0, 1.0]
    assert f"downloaded to {target / f'wandb-run-{run_id}'}" in capfd.readouterr().err
    assert not (tmpdir_here / "wandb_runs").exists()  # nothing went to the default folder
    assert remove_downloaded_logs(target) == [target / f"wandb-run-{run_id}"]


def test_a_folder_given_in_the_context(tmpdir_here: Path, tmp_path: Path) -> None:
    target = tmp_path / "ctx-logs"
    ctx = wandb_config(project="dl-folders", download_logs=str(target))
    assert ctx.download_logs == str(target)
    first = run_local(from_context, 2, custom_context=ctx)
    second = run_local(from_context, 3, custom_context=ctx)
    # several runs downloaded into one folder never mix: one sub-folder each
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [f"wandb-run-{first}", f"wandb-run-{second}"]
    )
    assert _rows(target / f"wandb-run-{second}") == [0.0, 1.0, 2.0]


def test_a_folder_given_to_a_sweep(tmpdir_here: Path, tmp_path: Path) -> None:
    target = tmp_path / "sweep-logs"

    @wandb_sweep(
        method="grid", parameters={"lr": {"values": [0.1, 0.2]}}, download_logs=str(target)
    )
    @env.task
    def tune() -> str:
        out = run_agent(function=objective)
        assert out is not None
        return str(out["sweep_id"])

    sweep_id = run_local(tune, custom_context=wandb_config(project="dl-folders"))
    root = target / f"wandb-sweep-{sweep_id}"
    info = json.loads((root / "sweep.json").read_text())
    assert sorted(
        _rows(root / "runs" / rid)[0] for rid in [t["run_id"] for t in info["trials"]]
    ) == [0.1, 0.2]
    assert remove_downloaded_logs(target) == [root]


def test_the_download_function_default_target(tmpdir_here: Path) -> None:
    run_id = run_local(from_context, 2, custom_context=wandb_config(project="dl-folders"))
    result = download_run(run_id)
    assert result.path == tmpdir_here / "wandb_runs" / f"wandb-run-{run_id}"
    assert _rows(result.path) == [0.0, 1.0]
