"""docs/migration.md lists the differences from 2.12.1 that users trip on, and each is still true.

Each test checks one difference against the installed code and that the page's table "Names,
links and errors that changed" states it (the `flyte` config key is checked by the page's own
example, which tests-docs/test_examples.py runs). The signature differences are checked by
packages/flyteplugins-wandb/tests/test_compat.py.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
import wandb
from flyte.clustered import ClusteredTaskEnvironment
from markdown_blocks import ROOT

from flyteplugins.wandb import Wandb, wandb_init
from flyteplugins.wandb_sweeps import SweepConfigError, download, wandb_sweep, wandb_sweep_config

PAGE = ROOT / "docs" / "migration.md"
TABLE = "## Names, links and errors that changed"


def table_row(first_cell_words: str) -> str:
    """The row of the changes table whose first cell contains ``first_cell_words``."""
    section = PAGE.read_text().split(TABLE, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    found = [row for row in rows if first_cell_words in row.split(" | ")[0]]
    assert len(found) == 1, f"docs/migration.md: no row about {first_cell_words!r} in {TABLE!r}"
    return found[0]


@pytest.fixture
def no_client_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No WANDB_* variable and no settings file: the client's own defaults decide."""
    for name in [n for n in os.environ if n.startswith("WANDB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)


def _link(link: Wandb) -> str:
    return link.get_link("r", "p", "development", {}, "a0", "a1", "pod")


@pytest.mark.usefixtures("no_client_settings")
@pytest.mark.parametrize(
    ("variable", "host", "client_base_url"),
    [
        (None, None, None),  # the client's default server
        ("https://api.wandb.ai", None, "https://api.wandb.ai"),
        (None, "https://wandb.ai", "https://api.wandb.ai"),
    ],
)
def test_links_point_where_the_installed_client_points(
    monkeypatch: pytest.MonkeyPatch, variable: str | None, host: str | None, client_base_url: str
) -> None:
    if variable:
        monkeypatch.setenv("WANDB_BASE_URL", variable)
    ours = _link(Wandb(host=host, project="proj", entity="team"))
    server = {"base_url": client_base_url} if client_base_url else {}
    client = wandb.Settings(**server, entity="team", project="proj", run_id="r-a1").run_url
    assert ours == client
    row = table_row("host of every W&B link")
    if wandb.__version__.startswith("0.31."):
        assert ours.startswith("https://forge.coreweave.com/wandb/")
        assert "`https://forge.coreweave.com/wandb/...`" in row
    assert "`WANDB_BASE_URL=https://api.wandb.ai`" in row
    assert '`host="https://wandb.ai"`' in row


def test_per_worker_links_are_named_after_weights_and_biases() -> None:
    env = ClusteredTaskEnvironment(name="migration_workers", replicas=2, nproc_per_node=2)

    @wandb_init(project="proj", entity="team", rank_scope="worker")
    @env.task
    def train() -> None: ...

    names = [link.name for link in train.links]
    assert names == ["Weights & Biases (worker 0)", "Weights & Biases (worker 1)"]
    row = table_row("per-worker links")
    assert "`Weights & Biases (worker 0)`, `Weights & Biases (worker 1)`" in row
    assert "`Worker 0`, `Worker 1`" in row


def test_the_download_traces_carry_the_names_the_page_gives() -> None:
    """``download_logs=True`` downloads through these two ``flyte.trace`` functions (a trace is
    named after its function in the Flyte UI)."""
    sync_trace, async_trace = download.download_wandb_logs, download.download_wandb_logs_async
    assert (sync_trace.__name__, async_trace.__name__) == (
        "download_wandb_logs",
        "download_wandb_logs_async",
    )
    assert inspect.iscoroutinefunction(async_trace)
    assert not inspect.iscoroutinefunction(sync_trace)
    assert "download_wandb_logs(" in inspect.getsource(download.after_task)
    assert "download_wandb_logs_async(" in inspect.getsource(download.after_task_async)
    row = table_row("traced download")
    assert "`download_wandb_logs` in a sync task, `download_wandb_logs_async` in an async" in row
    assert "`download_wandb_run_logs` (a run) / `download_wandb_sweep_logs` (a sweep)" in row


def test_wandb_sweep_on_a_plain_function_raises_type_error() -> None:
    def objective() -> None: ...

    with pytest.raises(TypeError, match=r"above @env\.task"):
        wandb_sweep(objective)
    row = table_row("`@wandb_sweep` on something that is not a Flyte task")
    assert "| `RuntimeError` | `TypeError`, raised at decoration |" in row


def test_bayes_and_its_metric_come_in_one_call() -> None:
    metric = {"name": "loss", "goal": "minimize"}
    with pytest.raises(SweepConfigError, match="same call"):
        wandb_sweep_config(method="bayes")
    assert issubclass(SweepConfigError, ValueError)
    wandb_sweep_config(method="bayes", metric=metric)
    wandb_sweep_config(metric=metric)  # the metric alone, and other methods alone, are fine
    wandb_sweep_config(method="random")
    row = table_row('`method="bayes"` in one')
    assert "`SweepConfigError` (a `ValueError`)" in row


def test_the_flyte_config_key_is_on_the_page_with_an_example() -> None:
    row = table_row("Each run's config")
    for name in ("run_name", "action_name", "project", "domain", "attempt"):
        assert f"`{name}`" in row
    assert 'sorted(get_wandb_run().config["flyte"])' in PAGE.read_text()


def test_there_is_a_section_for_what_was_removed() -> None:
    assert "\n## Removed in this release\n" in PAGE.read_text()
