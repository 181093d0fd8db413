"""The report's recorder, downsampling and SVG charts; the artifact naming and value rules."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flyteplugins.wandb import _artifacts, _charts, _report, _settings
from flyteplugins.wandb._charts import KEEP_POINTS, Recorder, Series, svg_chart


def _series(values: list[float]) -> Series:
    rec = Recorder()
    for v in values:
        rec.record({"v": v})
    return rec.series["v"]


@settings(max_examples=40)
@given(st.integers(min_value=0, max_value=3 * KEEP_POINTS + 7))
def test_a_series_stays_bounded_and_evenly_spread(n: int) -> None:
    rec = Recorder()
    for i in range(n):
        rec.record({"v": float(i)})
    if n == 0:
        assert "v" not in rec.series
        return
    s = rec.series["v"]
    assert s.count == n and s.last == n - 1
    assert len(s.xs) < KEEP_POINTS
    assert s.xs[0] == 0
    gaps = {b - a for a, b in zip(s.xs, s.xs[1:], strict=False)}
    assert gaps <= {float(s.stride)}  # one point in every `stride`, nothing else
    assert s.xs == s.ys  # x is the step, y the value logged at it


def test_a_hundred_thousand_rows_are_downsampled_not_dumped() -> None:
    s = _series([math.sin(i / 1000) for i in range(100_000)])
    svg = svg_chart("v", s)
    [points] = re.findall(r'points="([^"]*)"', svg)
    assert len(points.split()) < KEEP_POINTS
    assert 'data-logged="100000"' in svg
    assert len(svg) < 40_000


@pytest.mark.parametrize(
    ("calls", "steps"),
    [
        ([{}, {}, {}], [0, 1, 2]),  # every plain log is a step
        ([{"commit": False}, {}, {}], [0, 0, 1]),  # commit=False: the next log is the same row
        ([{"step": 5}, {}, {"step": 5}], [5, 5, 6]),  # an explicit step moves the row
        ([{"step": 3, "commit": False}, {"step": 3}, {}], [3, 3, 3]),  # row 3 still open
        ([{}, {"step": 0}, {}], [0, 1, 1]),  # a past step: logged at the current one, row kept open
    ],
)
def test_the_recorder_follows_the_clients_step_rule(
    calls: list[dict[str, Any]], steps: list[int]
) -> None:
    rec = Recorder()
    for i, kw in enumerate(calls):
        rec.record({f"k{i}": 1.0}, kw.get("step"), kw.get("commit"))
    assert [rec.series[f"k{i}"].xs[0] for i in range(len(calls))] == steps


def test_only_scalar_series_are_recorded() -> None:
    import numpy as np  # installed with wandb's stack (sweeps, pandas); numpy scalars are common

    rec = Recorder()
    rec.record(
        {
            "f": 1.5,
            "i": 2,
            "np": np.float32(0.5),
            "flag": True,
            "text": "x",
            "arr": np.zeros(3),
            "_hidden": 1.0,
            "nested": {"a": 1.0},
        }
    )
    rec.record("not a mapping")
    assert sorted(rec.series) == ["f", "i", "np"]
    assert rec.series["np"].last == 0.5


def test_non_finite_values_are_counted_but_not_drawn() -> None:
    s = _series([1.0, math.nan, 2.0, math.inf, 3.0])
    svg = svg_chart("v", s)
    assert s.count == 5 and 'data-logged="5" data-drawn="3"' in svg
    [points] = re.findall(r'points="([^"]*)"', svg)
    assert [float(p.split(",")[0]) for p in points.split()] == [44.0, 148.0, 252.0]  # x 0, 2, 4


def test_a_chart_draws_one_polyline_with_its_points_and_escapes_its_name() -> None:
    s = _series([3.0, 1.0, 2.0])
    svg = svg_chart("a<b>&c", s)
    assert svg.count("<polyline") == 1
    assert 'data-series="a&lt;b&gt;&amp;c"' in svg and "a<b>" not in svg
    [points] = re.findall(r'points="([^"]*)"', svg)
    ys = [float(p.split(",")[1]) for p in points.split()]
    assert ys[0] < ys[2] < ys[1]  # highest value at the top of the chart


def test_the_tab_escapes_every_value_and_marks_a_failure(tmp_path: Path) -> None:
    import wandb

    run = wandb.init(mode="offline", dir=str(tmp_path), project="<proj>", reinit="create_new")
    try:
        tab = _report.Tab(run, str(tmp_path))
        run.log({"a<b": 1.0})
        run.summary.update({"<k>": "<v>", "_private": 1, "nested": {"x": [1, 2]}})
        tab.closing(RuntimeError("<boom>"), 1)
    finally:
        run.finish()
    html = tab.html([tab._line(final=True)])
    assert "<k>" not in html and "&lt;k&gt;" in html and "&lt;v&gt;" in html
    assert "<proj>" not in html and "&lt;proj&gt;" in html  # the project
    assert "<boom>" not in html and "RuntimeError: &lt;boom&gt;" in html
    assert 'data-series="a&lt;b"' in html
    assert "_private" not in html
    assert "{&quot;x&quot;: [1, 2]}" in html  # a nested summary value as JSON
    assert 'class="fpw-failed">failed (exit 1)' in html
    assert f"wandb sync {run.settings.sync_dir}" in html  # offline: how to upload it


@pytest.mark.parametrize(
    ("value", "ok"),
    [(None, True), (True, True), (False, True), (1, False), ("yes", False), ([], False)],
)
def test_flags_are_true_or_false(value: Any, ok: bool) -> None:
    if ok:
        _settings.check("report", value)
    else:
        with pytest.raises(TypeError, match=r"report=.*expected True or False"):
            _settings.check("report", value)


def test_recorder_on_a_real_offline_run_and_log_given_back(tmp_path: Path) -> None:
    import wandb

    run = wandb.init(mode="offline", dir=str(tmp_path), project="unit-report", reinit="create_new")
    try:
        own = vars(run).get("log")
        rec = _charts.attach(run)
        assert _charts.attach(run) is rec  # a second user shares it
        run.log({"loss": 1.0})
        run.log({"loss": 0.5})
        _charts.detach(run)
        run.log({"loss": 0.25})  # still attached for the first user
        _charts.detach(run)
        run.log({"loss": 0.125})
        assert rec.series["loss"].count == 3
        assert vars(run).get("log") is own  # the client's own method again
    finally:
        run.finish()


# -- artifacts: names and values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "output", "name"),
    [
        ("train", "o0", "train-o0"),
        ("wandb_demo.train", "o0.model", "train-o0.model"),
        ("prep", "o0.files.0", "prep-o0.files.0"),
        ("prep", "o0.a b/c:d", "prep-o0.a-b-c-d"),
    ],
)
def test_artifact_names_are_task_and_output(task: str, output: str, name: str) -> None:
    assert _artifacts.artifact_name(task, output) == name


def test_the_output_alias_names_the_flyte_output_in_allowed_characters() -> None:
    alias = _artifacts.output_alias({"run_name": "r/1", "action_name": "a:0"}, "o0")
    assert alias == "flyte-r-1-a-0-o0"
    assert _artifacts.output_alias(None, "o0") is None


class Pair(NamedTuple):
    model: int
    score: float


def _two() -> tuple[int, str]:
    return 1, "x"


def _one() -> tuple[int, ...]:
    return (1,)


@pytest.mark.parametrize(
    ("func", "result", "names"),
    [
        (_two, (1, "x"), ["o0", "o1"]),
        (lambda: Pair(1, 0.5), Pair(1, 0.5), ["model", "score"]),
        (lambda: 3, 3, ["o0"]),
        (_one, (1,), ["o0"]),  # a variadic tuple is one output
    ],
)
def test_output_names_follow_flyte(func: Any, result: Any, names: list[str]) -> None:
    assert [n for n, _ in _artifacts.output_items(func, result)] == names


@pytest.mark.parametrize(
    ("inputs", "kept"),
    [
        ({"lr": 0.1, "epochs": 3, "name": "x"}, {"lr": 0.1, "epochs": 3, "name": "x"}),
        ({"api_key": "k", "hf_token": "t", "db_password": "p", "auth": "a"}, {}),
        ({"long": "x" * 1000, "blob": b"xx"}, {}),
        ({"cfg": {"a": 1, "b": [1, 2]}}, {"cfg": {"a": 1, "b": [1, 2]}}),
        ({"big": list(range(10_000))}, {}),
        ({"obj": object()}, {}),
    ],
)
def test_only_small_inputs_not_named_like_secrets_go_to_config(
    inputs: dict[str, Any], kept: dict[str, Any]
) -> None:
    assert _artifacts.scalar_inputs(inputs) == kept
