"""The W&B tab of the Flyte report, read from the report HTML that real local Flyte runs wrote.

The real wandb client logs offline; what the tab shows is compared with what the client recorded
in the run's ``.wandb`` file.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from html import escape
from pathlib import Path

import flyte
import pytest
from _plugin_helpers import reset_wandb, settled_runs
from _report_html import parse_tab, reports_of, run_named
from _report_tasks import train, train_fails, train_sync, train_with_checkpoint

from flyteplugins.wandb._report import TAB_NAME

STEPS = 20


def _only_tab(run_name: str) -> tuple[str, str]:
    reports = reports_of(run_name)
    assert len(reports) == 1, reports.keys()
    [(action, html)] = reports.items()
    return action, html


def test_tab_shows_the_run_its_summary_and_one_polyline_per_series(wandb_offline: Path) -> None:
    name, run_id = run_named(train, STEPS, prefix="report-ok")
    _, html = _only_tab(name)
    assert f">{escape(TAB_NAME)}</li>" in html  # Flyte's navigation names the tab
    tab = parse_tab(html)
    [rec] = settled_runs(wandb_offline)
    assert rec.run_id == run_id
    header, row = tab.runs
    assert header == ["run", "project", "entity", "group", "state"]
    assert row == [run_id, "report-tests", "local", "-", "finished (exit 0)"]
    summary = tab.summary()
    for key in ("loss", "acc", "lr", "best_acc"):
        assert float(summary[key]) == pytest.approx(rec.summary[key], rel=1e-3)
    assert f"wandb sync {rec.path.parent}" in tab.text  # offline: how to upload it
    # one chart per scalar series, with every logged point
    assert sorted(c.series for c in tab.charts) == ["acc", "loss", "lr"]
    assert (tab.chart("loss").logged, len(tab.chart("loss").points)) == (STEPS, STEPS)
    assert len(tab.chart("lr").points) == len(rec.metric("lr")) == STEPS // 2
    # the polyline follows the logged values: loss falls, so y (pixels, downwards) rises
    ys = [y for _, y in tab.chart("loss").points]
    assert ys == sorted(ys)


def test_a_checkpoint_logged_in_the_task_is_listed_in_its_tab(wandb_offline: Path) -> None:
    name, _ = run_named(train_with_checkpoint, 3, prefix="report-ckpt")
    _, html = _only_tab(name)
    assert "report-model" in parse_tab(html).text


def test_a_failed_task_tab_says_failed(wandb_offline: Path) -> None:
    name = f"report-fail-{uuid.uuid4().hex[:8]}"
    reset_wandb()
    flyte.init()
    with pytest.raises(Exception, match="failed on purpose"):
        flyte.with_runcontext(mode="local", name=name).run(train_fails, 3)
    _, html = _only_tab(name)
    tab = parse_tab(html)
    assert tab.runs[1][-1] == "failed (exit 1)"
    assert "The task failed: RuntimeError: failed on purpose" in tab.text
    assert tab.chart("loss").logged == 3
    [rec] = settled_runs(wandb_offline)
    assert rec.exit_code == 1


def test_a_sync_task_logging_through_wandb_log_gets_its_chart(wandb_offline: Path) -> None:
    name, run_id = run_named(train_sync, 7, prefix="report-sync")
    tab = parse_tab(_only_tab(name)[1])
    assert tab.runs[1][0] == run_id
    assert tab.chart("x").logged == 7
    [rec] = settled_runs(wandb_offline)
    assert rec.metric("x") == [float(i * i) for i in range(7)]


def test_context_setting_turns_the_tab_on(wandb_offline: Path) -> None:
    from _report_tasks import make_file

    from flyteplugins.wandb import wandb_config

    name, _ = run_named(
        make_file, "ctx", prefix="report-ctx", custom_context=wandb_config(report=True)
    )
    tab = parse_tab(_only_tab(name)[1])
    assert tab.runs[1][-1] == "finished (exit 0)"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_the_report_renders_in_headless_chromium(wandb_offline: Path, tmp_path: Path) -> None:
    name, run_id = run_named(train, STEPS, prefix="report-browser")
    _, html = _only_tab(name)
    page = tmp_path / "report.html"
    # the page, plus a probe that writes what the browser found into the DOM
    probe = (
        "<script>window.addEventListener('load', () => {"
        "const s = document.querySelectorAll('section.fpw-wandb svg polyline');"
        "const ok = [...s].every(p => p.points.numberOfItems > 0 && p.getBBox().width > 0);"
        "document.title = 'probe:' + s.length + ':' + ok;});</script>"
    )
    page.write_text(html.replace("</body>", probe + "</body>"))
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--virtual-time-budget=5000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "<title>probe:3:true</title>" in proc.stdout
    assert run_id in proc.stdout
    # no script error on the page (the report's own script and the tab); fonts from the
    # network are not reachable here and do not count
    errors = [line for line in proc.stderr.splitlines() if "Uncaught" in line]
    assert errors == []


def test_the_tab_is_drawn_once_when_the_call_ends(wandb_offline: Path) -> None:
    from _report_tasks import train_then_look

    name, mid_run = run_named(train_then_look, 6, prefix="report-once")
    assert 'class="fpw-wandb"' not in mid_run  # nothing written while the task ran
    tab = parse_tab(_only_tab(name)[1])
    assert tab.runs[1][-1] == "finished (exit 0)"
    assert tab.chart("loss").logged == 6
