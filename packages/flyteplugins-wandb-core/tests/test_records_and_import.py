"""Core's records are frozen dataclasses, templates split losslessly, and importing core loads
nothing outside the standard library."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb_core import LinkTarget, RunPlan, Topology, is_template, plan, sanitize
from flyteplugins.wandb_core._ids import split_templates


def test_records_are_immutable_comparable_hashable_and_picklable() -> None:
    t = Topology.enumerate(2, 2)[3]
    p = plan("new", "worker", t, "b")
    link = LinkTarget("run", "b", 1)
    for record in (t, p, link):
        with pytest.raises(dataclasses.FrozenInstanceError, match="run_id"):
            record.run_id = "x"  # type: ignore[misc,union-attr,unused-ignore]
        with pytest.raises(dataclasses.FrozenInstanceError, match="kind"):
            del record.kind  # type: ignore[union-attr]
        assert pickle.loads(pickle.dumps(record)) == record
        assert hash(record) == hash(pickle.loads(pickle.dumps(record)))
    assert t == Topology(rank=3, world_size=4, local_rank=1, local_world_size=2, worker_index=1)
    assert t != Topology(rank=2, world_size=4, local_rank=0, local_world_size=2, worker_index=1)
    assert repr(link) == "LinkTarget(kind='run', id='b', worker=1)"
    assert isinstance(p, RunPlan)
    assert len({p, plan("new", "worker", t, "b")}) == 1


_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
texts = st.text(alphabet=st.sampled_from(list("ab-_.{} /:é1A\t")), max_size=60) | st.text(
    max_size=40
)


@given(texts)
def test_split_templates_is_lossless(text: str) -> None:
    parts = split_templates(text)
    assert "".join(parts) == text
    assert len(parts) % 2 == 1
    assert all(is_template(p) for p in parts[1::2])
    assert not any(is_template(p) for p in parts[::2])
    assert is_template(text) == (len(parts) > 1)


@given(texts)
def test_sanitize_keeps_templates_and_only_safe_characters(text: str) -> None:
    parts = split_templates(text)
    cleaned = split_templates(sanitize(text))
    assert cleaned[1::2] == parts[1::2]
    assert set("".join(cleaned[::2])) <= _SAFE
    # a run of rejected characters becomes one "-", so no literal grows
    assert all(len(c) <= len(p) for c, p in zip(cleaned[::2], parts[::2], strict=True))


def test_import_loads_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import flyteplugins.wandb_core; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added = out.stdout.split()
    foreign = [
        m
        for m in added
        if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("flyteplugins")
    ]
    assert foreign == []
    assert {"dataclasses", "re", "typing"} <= set(added)


def test_typing_names() -> None:
    import flyteplugins.wandb_core as core

    assert core.RunMode.__args__ == ("auto", "new", "shared")  # type: ignore[attr-defined]
    assert core.RankScope.__args__ == ("global", "worker")  # type: ignore[attr-defined]
    assert set(core.DistributedInfo.__annotations__) == {
        "rank",
        "local_rank",
        "world_size",
        "local_world_size",
        "worker_index",
        "num_workers",
    }
    assert core.Role.__args__ == ("owner", "primary", "secondary", "reuse", "silent")  # type: ignore[attr-defined]
    assert core.RunMode.__args__ == core.RUN_MODES  # type: ignore[attr-defined]
