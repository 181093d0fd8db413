"""The local controller on W&B's open-source engine (sweeps 0.2.0), without runs or Flyte."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flyteplugins.wandb_sweeps import LocalSweep, SweepConfigError, create_local_sweep
from flyteplugins.wandb_sweeps._controller import canonical, lookup, metric_value

LOSS = {"name": "loss", "goal": "minimize"}


def sweep(method: str, parameters: dict[str, Any], **kw: Any) -> LocalSweep:
    return create_local_sweep({"method": method, "metric": LOSS, "parameters": parameters, **kw})


def finish_all(s: LocalSweep, trials: list, f: Any = lambda p: 0.0) -> None:
    for t in trials:
        s.report(t.run_id, state="finished", summary={"loss": f(t.params)})


def test_grid_enumerates_every_point_once_then_stops() -> None:
    s = sweep("grid", {"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}})
    first = s.propose(4)
    rest = s.propose(10)
    assert len(first) == 4 and len(rest) == 2
    assert s.exhausted
    assert s.propose(1) == []
    points = [canonical(t.params) for t in first + rest]
    assert len(set(points)) == 6
    assert len({t.run_id for t in first + rest}) == 6


def test_grid_pending_trials_are_not_handed_out_twice() -> None:
    s = sweep("grid", {"a": {"values": [1, 2]}})
    one, two = s.propose(1), s.propose(1)
    assert one[0].params != two[0].params
    assert s.propose(1) == []


def test_nested_and_integer_range_grids() -> None:
    s = sweep(
        "grid", {"opt": {"parameters": {"lr": {"values": [0.1, 0.2]}}}, "n": {"min": 1, "max": 3}}
    )
    trials = s.propose(100)
    assert sorted((t.params["opt"]["lr"], t.params["n"]) for t in trials) == [
        (lr, n) for lr in (0.1, 0.2) for n in (1, 2, 3)
    ]


def test_random_respects_bounds_and_run_cap() -> None:
    s = sweep("random", {"lr": {"min": 0.5, "max": 0.6}, "k": {"values": [1, 2]}}, run_cap=5)
    trials = s.propose(3) + s.propose(3)
    assert len(trials) == 5
    assert all(0.5 <= t.params["lr"] <= 0.6 and t.params["k"] in (1, 2) for t in trials)
    assert all(type(t.params["lr"]) is float for t in trials)  # plain Python, not numpy
    assert s.propose(1) == []


def test_bayes_learns_from_reported_metrics() -> None:
    s = sweep("bayes", {"x": {"min": -2.0, "max": 2.0}})
    for _ in range(8):
        finish_all(s, s.propose(2), lambda p: (p["x"] - 0.7) ** 2)
    best = s.best()
    assert best is not None
    assert abs(best.params["x"] - 0.7) < 0.3
    assert best.metric == min(t.metric for t in s.trials if t.metric is not None)


def test_maximize_and_target_stop_the_sweep() -> None:
    s = create_local_sweep(
        {
            "method": "random",
            "metric": {"name": "acc", "goal": "maximize", "target": 0.9},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
        }
    )
    t1, t2 = s.propose(2)
    s.report(t1.run_id, state="finished", summary={"acc": 0.5})
    assert not s.exhausted
    s.report(t2.run_id, state="finished", summary={"acc": 0.95})
    assert s.exhausted
    assert s.best() is not None and s.best().run_id == t2.run_id  # type: ignore[union-attr]


def test_failed_trials_are_never_best_and_results_are_json() -> None:
    s = sweep("grid", {"a": {"values": [1, 2]}})
    t1, t2 = s.propose(2)
    s.report(t1.run_id, state="failed", error="boom")
    s.report(t2.run_id, state="finished", summary={"loss": 3.0})
    results = s.results()
    assert results["best"]["run_id"] == t2.run_id
    assert [t["state"] for t in results["trials"]] == ["failed", "finished"]
    assert lookup(s.sweep_id) is s


def test_metric_scoring_uses_summary_and_history() -> None:
    assert metric_value("loss", "minimize", {"loss": 2.0}, [{"loss": 1.0}, {"loss": 3.0}]) == 1.0
    assert metric_value("acc", "maximize", {}, [{"acc": 0.1}, {"acc": 0.4}]) == 0.4
    assert metric_value("a.b", "minimize", {"a": {"b": 5}}, []) == 5.0
    assert metric_value("loss", "minimize", {"loss": float("nan")}, []) is None
    assert metric_value("loss", "minimize", {"loss": "x"}, []) is None


def test_concurrent_proposals_never_duplicate_grid_points() -> None:
    s = sweep("grid", {"a": {"values": list(range(10))}, "b": {"values": list(range(5))}})
    got: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while trials := s.propose(3):
            with lock:
                got.extend(canonical(t.params) for t in trials)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 50 == len(set(got))


def test_prior_runs_count_as_trials() -> None:
    s = sweep("grid", {"a": {"values": [1, 2]}})
    s.add_prior("old1", {"a": 1}, {"loss": 0.5}, [], finished=True)
    [t] = s.propose(5)
    assert t.params == {"a": 2}
    assert s.best() is not None and s.best().run_id == "old1"  # type: ignore[union-attr]


def test_invalid_configs_and_run_cap_are_refused() -> None:
    with pytest.raises(SweepConfigError, match="unknown sweep method"):
        create_local_sweep({"method": "hyper", "parameters": {"a": {"value": 1}}})
    with pytest.raises(SweepConfigError, match="run_cap"):
        sweep("random", {"a": {"value": 1}}, run_cap=0)


def test_missing_engine_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sweeps", None)  # as if the [local] extra were missing
    with pytest.raises(ImportError, match=r"flyteplugins-wandb-sweeps\[local\]"):
        sweep("grid", {"a": {"value": 1}})
