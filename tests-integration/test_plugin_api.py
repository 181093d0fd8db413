"""The public surface: decoration-time validation, lazy imports, log download after a task."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import flyte
import pytest
from _plugin_helpers import only, run_local, user_rows

import flyteplugins.wandb as plugin
from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init

env = flyte.TaskEnvironment(name="plugin_api")


@wandb_init(download_logs=True)
@env.task
def downloads(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(steps):
        run.log({"step_value": i})
    return str(run.id)


def _fresh_python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout.strip()


def test_import_does_not_import_wandb() -> None:
    code = (
        "import sys, json\n"
        "import flyteplugins.wandb as p\n"
        "from flyteplugins.wandb import wandb_init, wandb_config, get_wandb_run, Wandb\n"
        "from flyteplugins.wandb import get_distributed_info, RankScope, RunMode\n"
        "from flyteplugins.wandb import wandb_sweep, wandb_sweep_config, get_wandb_sweep_id\n"
        "from flyteplugins.wandb import WandbSweep\n"
        "@wandb_init(project='x')\n"
        "def f():\n"
        "    return 1\n"
        "wandb_config(project='2024')\n"
        "print(json.dumps('wandb' in sys.modules))\n"
    )
    assert json.loads(_fresh_python(code)) is False


def test_sweeps_names_come_from_the_sweeps_distribution() -> None:
    import flyteplugins.wandb_sweeps as sweeps

    for name in ("wandb_sweep", "wandb_sweep_config", "get_wandb_sweep_id", "WandbSweep"):
        assert getattr(plugin, name) is getattr(sweeps, name)


def test_sweeps_names_without_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules is how Python marks a module as not importable
    monkeypatch.setitem(sys.modules, "flyteplugins.wandb_sweeps", None)
    monkeypatch.delitem(plugin.__dict__, "wandb_sweep", raising=False)
    with pytest.raises(ImportError, match=r'pip install "flyteplugins-wandb\[sweeps\]"'):
        from flyteplugins.wandb import wandb_sweep  # noqa: F401
    with pytest.raises(AttributeError):
        plugin.not_a_name  # noqa: B018


def test_public_names() -> None:
    assert set(plugin.__all__) >= {
        "wandb_init",
        "wandb_config",
        "get_wandb_run",
        "get_distributed_info",
        "get_wandb_run_dir",
        "Wandb",
        "RunMode",
        "RankScope",
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"run_mode": "sometimes"}, ValueError, r"run_mode 'sometimes'.*'auto', 'new', 'shared'"),
        ({"run_mode": 1}, ValueError, r"run_mode 1 \(int\)"),
        ({"rank_scope": "node"}, ValueError, r"rank_scope 'node'.*'global', 'worker'"),
        ({"tags": "one"}, TypeError, r"tags='one'"),
        ({"project": 2024}, TypeError, r"project=2024 \(int\)"),
        ({"id": "a/b"}, ValueError, r"invalid W&B run id 'a/b'"),
        ({"mode": "sometimes"}, ValueError, r"mode='sometimes': expected one of 'online'"),
        ({"download_logs": "yes"}, TypeError, r"download_logs='yes'"),
        ({"config": {"f": object()}}, TypeError, r"config\['f'\]"),
    ],
)
def test_bad_arguments_fail_at_decoration(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    if "config" not in kwargs:  # the decorator's config goes to wandb.init as is
        with pytest.raises(error, match=match):
            wandb_init(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        wandb_config(**kwargs)  # type: ignore[arg-type]


def test_download_logs_needs_the_sweeps_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    from flyteplugins.wandb import _extension

    # no distribution registers the log download in this group: as without the sweeps one
    monkeypatch.setattr(_extension, "DOWNLOAD_GROUP", "flyteplugins.wandb.download-absent")
    with pytest.raises(ImportError, match=r'pip install "flyteplugins-wandb\[sweeps\]"'):
        wandb_init(download_logs=True)


def test_download_logs_after_the_task(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    target = tmp_path_factory.mktemp("downloads")
    monkeypatch.setattr(tempfile, "tempdir", str(target))  # where the download lands
    rid = run_local(downloads, 3)
    rec = only(wandb_offline)
    assert [r["step_value"] for r in user_rows(rec)] == [0, 1, 2]
    folder = target / "wandb_runs" / f"wandb-run-{rid}"  # the documented default folder
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert [row["step_value"] for row in history] == [0, 1, 2]
