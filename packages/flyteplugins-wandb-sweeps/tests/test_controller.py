"""The local controller on W&B's open-source engine (sweeps 0.2.0), without runs or Flyte."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# ----------------------------------------------------------------------------- ids, state


@pytest.mark.parametrize(
    ("run_name", "action_name"),
    [
        ("r1", "a0"),
        ("73d61267-8005-4885-8a1b-2c9f0e5d4b3a", "4d3n37bps3pit0c471roeu6sl"),
        ("my run/with:odd chars", "a1"),
        ("rf2c6b5d1e0a9b8c7d6e5", "{{.actionName}}"),
    ],
)
def test_local_sweep_ids_are_derived_from_the_run_and_action(
    run_name: str, action_name: str
) -> None:
    from flyteplugins.wandb_core import is_valid_run_id
    from flyteplugins.wandb_sweeps._controller import MAX_TAG_LENGTH, local_sweep_id, trial_tags

    sweep_id = local_sweep_id(run_name, action_name)
    assert sweep_id == local_sweep_id(run_name, action_name)  # every attempt: the same
    assert sweep_id.endswith("-" + action_name)  # a template stays for Flyte to fill in
    assert is_valid_run_id(sweep_id)
    assert len(sweep_id) <= MAX_TAG_LENGTH
    assert trial_tags(sweep_id) == [sweep_id]
    assert local_sweep_id(run_name + "x", action_name) != sweep_id
    assert local_sweep_id(run_name, action_name + "x") != sweep_id


@given(st.text(min_size=1, max_size=80), st.from_regex(r"[a-z0-9]{1,40}", fullmatch=True))
def test_local_sweep_ids_fit_a_wandb_tag(run_name: str, action_name: str) -> None:
    from flyteplugins.wandb_core import is_valid_run_id
    from flyteplugins.wandb_sweeps._controller import MAX_TAG_LENGTH, local_sweep_id

    sweep_id = local_sweep_id(run_name, action_name)
    assert is_valid_run_id(sweep_id) and len(sweep_id) <= MAX_TAG_LENGTH


def test_a_long_sweep_id_is_not_used_as_a_tag() -> None:
    from flyteplugins.wandb_sweeps._controller import trial_tags

    assert trial_tags("x" * 65) == []


GRID4 = {"a": {"values": [1, 2]}, "b": {"values": [3, 4]}}


def test_finished_trials_are_saved_and_resumed_not_proposed_again(tmp_path: Path) -> None:
    state = str(tmp_path / "run" / "wandb-sweeps" / "s1.json")
    config = {"method": "grid", "metric": LOSS, "parameters": GRID4}
    with create_local_sweep(config, sweep_id="s1", state=state) as first:
        done, running = first.propose(2)
        first.report(done.run_id, state="finished", summary={"loss": 0.5})
        first.mark_running(running.run_id)  # interrupted: not saved, so proposed again
    with create_local_sweep(config, sweep_id="s1", state=state) as second:
        [restored] = second.claim_restored()
        assert (restored.run_id, restored.params, restored.metric) == (
            done.run_id,
            done.params,
            0.5,
        )
        assert second.claim_restored() == []  # handed out once
        rest = second.propose(10)
        assert sorted(canonical(t.params) for t in rest) == sorted(
            canonical(p)
            for p in ({"a": a, "b": b} for a in (1, 2) for b in (3, 4))
            if p != done.params
        )
        assert second.best() is restored


def test_claims_are_capped(tmp_path: Path) -> None:
    state = str(tmp_path / "s.json")
    config = {"method": "grid", "metric": LOSS, "parameters": GRID4}
    with create_local_sweep(config, sweep_id="s2", state=state) as first:
        finish_all(first, first.propose(3))
    with create_local_sweep(config, sweep_id="s2", state=state) as second:
        assert len(second.claim_restored(2)) == 2
        assert len(second.claim_restored(5)) == 1
        assert len(second.propose(5)) == 1


def test_state_of_another_configuration_is_not_resumed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = str(tmp_path / "s.json")
    with create_local_sweep(
        {"method": "grid", "metric": LOSS, "parameters": GRID4}, sweep_id="s3", state=state
    ) as first:
        finish_all(first, first.propose(2))
    other = {"method": "grid", "metric": LOSS, "parameters": {"a": {"values": [7, 8]}}}
    with caplog.at_level("WARNING"), create_local_sweep(other, sweep_id="s3", state=state) as s:
        assert s.claim_restored() == []
        assert len(s.propose(5)) == 2
    assert "another sweep configuration" in caplog.text


def test_prior_runs_are_not_saved_as_trials_of_the_sweep(tmp_path: Path) -> None:
    import json

    state = tmp_path / "s.json"
    config = {"method": "grid", "metric": LOSS, "parameters": GRID4}
    with create_local_sweep(config, sweep_id="s4", state=str(state)) as s:
        s.add_prior("prior1", {"a": 1, "b": 3}, {"loss": 0.1}, [], finished=True)
        finish_all(s, s.propose(1))
    saved = json.loads(state.read_text())
    assert [t["run_id"] for t in saved["trials"]] != ["prior1"]
    assert len(saved["trials"]) == 1 and saved["trials"][0]["run_id"] != "prior1"


def test_a_state_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_text('{"format": 99}')
    with pytest.raises(ValueError, match="not the state of a local sweep"):
        create_local_sweep({"method": "grid", "parameters": GRID4}, state=str(state))


def test_a_state_that_cannot_be_written_is_logged_and_the_sweep_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "folder"
    state = str(folder / "s.json")
    with (
        caplog.at_level("WARNING"),
        create_local_sweep(
            {"method": "grid", "metric": LOSS, "parameters": GRID4}, state=state
        ) as s,
    ):
        folder.write_text("")  # the state's folder cannot be made any more
        finish_all(s, s.propose(1))
        assert [t.state for t in s.trials] == ["finished"]
    assert "could not save its state" in caplog.text
