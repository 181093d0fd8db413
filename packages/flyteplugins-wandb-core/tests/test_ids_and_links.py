"""Run id validity, deterministic shortening, templates, link targets and URLs."""

from __future__ import annotations

import pytest

from flyteplugins.wandb_core import (
    MAX_RUN_ID_LENGTH,
    is_valid_run_id,
    link_targets,
    make_base,
    parse_nnodes,
    plan_job,
)


def test_base_is_valid_for_wandb() -> None:
    """Exact bases are pinned in test_ids_pinned.py; here, one made of reserved characters."""
    assert is_valid_run_id(make_base("x;y,z#?", "'q'"))


def test_long_base_is_shortened_deterministically() -> None:
    long = "r" * 300
    a, b = make_base(long, "a0"), make_base(long, "a0")
    assert a == b
    assert len(a) <= MAX_RUN_ID_LENGTH - 28
    assert a != make_base(long + "x", "a0")
    assert is_valid_run_id(a + "-worker-999-rank-999")


def test_long_base_never_cuts_a_template() -> None:
    base = make_base("r" * 300, "{{.actionName}}")
    assert base.endswith("-{{.actionName}}")


def test_templates_alone_too_long() -> None:
    with pytest.raises(ValueError, match="cannot fit"):
        make_base("{{.a}}{{.b}}{{.c}}", "{{.d}}")


@pytest.mark.parametrize(
    ("mode", "scope", "nnodes", "kind", "ids", "workers"),
    [
        ("auto", "global", None, "run", ["b"], [None]),
        ("new", "global", None, "run", ["b"], [None]),
        ("auto", "global", 2, "run", ["b"], [None]),
        ("auto", "worker", 2, "run", ["b-worker-0", "b-worker-1"], [0, 1]),
        ("shared", "worker", "1:3", "run", ["b-worker-0", "b-worker-1", "b-worker-2"], [0, 1, 2]),
        ("shared", "worker", 1, "run", ["b"], [None]),
        ("new", "global", 2, "group", ["b"], [None]),
        ("new", "worker", 2, "group", ["b-worker-0", "b-worker-1"], [0, 1]),
        ("new", "global", 1, "group", ["b"], [None]),
    ],
)
def test_link_targets(
    mode: str,
    scope: str,
    nnodes: int | str | None,
    kind: str,
    ids: list[str],
    workers: list[int | None],
) -> None:
    targets = link_targets(mode, scope, "b", nnodes=nnodes, nproc_per_node=2)
    assert [t.kind for t in targets] == [kind] * len(ids)
    assert [t.id for t in targets] == ids
    assert [t.worker for t in targets] == workers


def test_link_targets_follow_parent_and_user_id() -> None:
    assert link_targets("auto", "global", "b", parent_id="p")[0].id == "p"
    assert link_targets("new", "global", "b", parent_id="p")[0].id == "b"
    assert link_targets("auto", "global", "b", parent_id="p", user_id="u")[0].id == "u"


def test_links_equal_the_runs_the_plan_creates() -> None:
    for mode in ("auto", "shared", "new"):
        for scope in ("global", "worker"):
            jobs = plan_job(mode, scope, 3, 2, "b")
            key = "group" if mode == "new" else "run_id"
            planned = {getattr(p, key) for _, p in jobs if p.logs}
            linked = {t.id for t in link_targets(mode, scope, "b", nnodes=3, nproc_per_node=2)}
            assert planned == linked


@pytest.mark.parametrize(("value", "n"), [(2, 2), ("3", 3), ("1:4", 4), (" 2:8 ", 8), ("3:3", 3)])
def test_parse_nnodes(value: int | str, n: int) -> None:
    assert parse_nnodes(value) == n


@pytest.mark.parametrize("value", [0, "x", "1:y", "0", True, 2.5, "4:1", "0:2", "a:2"])
def test_parse_nnodes_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="invalid nnodes"):
        parse_nnodes(value)  # type: ignore[arg-type]


def test_split_templates_is_public() -> None:
    from flyteplugins.wandb_core import split_templates

    assert split_templates("a-{{.actionName}}-b") == ["a-", "{{.actionName}}", "-b"]
