"""Run ids pinned byte for byte.

Every value below was computed by core 0.1 (before core used ``re`` and ``dataclasses``) and must
never change: a run id that changes makes a resumed or retried task start a new W&B run, so any
change to this table is a major version of core (see the CHANGELOG).
"""

from __future__ import annotations

import pytest

from flyteplugins.wandb_core import check_user_id, make_base, plan_job, sanitize
from flyteplugins.wandb_core._ids import stable_digest

BASES = [
    ("my run/2024", "a0:b", "my-run-2024-a0-b"),
    ("run 1", "{{.actionName}}", "run-1-{{.actionName}}"),
    ("flyte", "a0", "flyte-a0"),
    ("r" * 300, "a0", "r" * 91 + "-11bed6e5"),
    ("r" * 300 + "x", "a0", "r" * 91 + "-560b3efb"),
    ("r" * 300, "{{.actionName}}", "r" * 50 + "-a3d9e204-{{.actionName}}"),
    ("é" * 150, "ä0", "---0"),
    (
        "{{ .runName }}" + "n" * 120,
        "{{.actionName}}",
        "{{ .runName }}nnnnnnnnnn-2c9ea105-{{.actionName}}",
    ),
    ("train-" + "x" * 95, "a1", "train-" + "x" * 85 + "-791b5d04"),
    ("a  b\t\tc", "{{bad}} {{1x}} {{ .x.y }}", "a-b-c-{{bad}}-1x-{{ .x.y }}"),
    ("Ünïcödé" * 20, "a3-b", "-n-c-d" * 15 + "--f061ba8b"),
]

DIGESTS = [
    ("", "cbf29ce4"),
    ("flyte", "5fb5d7a9"),
    ("x" * 1000, "e1add1d9"),
    ("é", "0ac21707"),
    ("run-1-{{.actionName}}", "8370e644"),
    ("\u2603snow", "ca6d8a40"),
]

USER_IDS = [
    ("exp-1", "exp-1"),
    ("x" * 500, "x" * 91 + "-b6822c71"),
    ("{{.runName}}-" + "u" * 200, "{{.runName}}-" + "u" * 50 + "-6e422378"),
    ("a.b_c-" * 30, "a.b_c-" * 15 + "a-5119e187"),
]

SANITIZED = [
    ("a b{{ .runName }}c/d", "a-b{{ .runName }}c-d"),
    ("x::y;;z{{nope}}}", "x-y-z{{nope}}-"),
    ("{{ .a }}{{.b.c}}{{ 9 }}", "{{ .a }}{{.b.c}}-9-"),
]


@pytest.mark.parametrize(("run_name", "action", "want"), BASES)
def test_make_base_is_pinned(run_name: str, action: str, want: str) -> None:
    assert make_base(run_name, action) == want


@pytest.mark.parametrize(("text", "want"), DIGESTS)
def test_digest_is_pinned(text: str, want: str) -> None:
    assert stable_digest(text) == want


@pytest.mark.parametrize(("run_id", "want"), USER_IDS)
def test_user_ids_are_pinned(run_id: str, want: str) -> None:
    assert check_user_id(run_id) == want


@pytest.mark.parametrize(("text", "want"), SANITIZED)
def test_sanitize_is_pinned(text: str, want: str) -> None:
    assert sanitize(text) == want


def test_shortened_job_ids_are_pinned() -> None:
    base = make_base("r" * 300, "a0")
    ids = [p.run_id for _, p in plan_job("new", "worker", 2, 2, base)]
    assert ids == [f"{'r' * 91}-11bed6e5-worker-{w}-rank-{r}" for w in (0, 1) for r in (0, 1)]
