"""Core's records behave like frozen dataclasses, its string scanning matches the regex rules, and
importing it loads nothing beyond a few standard-library modules."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flyteplugins.wandb_core import LinkTarget, RunPlan, Topology, plan, sanitize
from flyteplugins.wandb_core._ids import split_templates, stable_digest


def test_records_are_immutable_comparable_hashable_and_picklable() -> None:
    t = Topology.enumerate(2, 2)[3]
    p = plan("new", "worker", t, "b")
    link = LinkTarget("run", "b", 1)
    for record in (t, p, link):
        with pytest.raises(AttributeError, match="immutable"):
            record.run_id = "x"  # type: ignore[misc,union-attr,unused-ignore]
        with pytest.raises(AttributeError, match="immutable"):
            del record.kind  # type: ignore[union-attr]
        assert pickle.loads(pickle.dumps(record)) == record
        assert hash(record) == hash(pickle.loads(pickle.dumps(record)))
    assert t == Topology(rank=3, world_size=4, local_rank=1, local_world_size=2, worker_index=1)
    assert t != Topology(rank=2, world_size=4, local_rank=0, local_world_size=2, worker_index=1)
    assert repr(link) == "LinkTarget(kind='run', id='b', worker=1)"
    assert isinstance(p, RunPlan)
    assert len({p, plan("new", "worker", t, "b")}) == 1


_TEMPLATE = re.compile(r"(\{\{\s*\.?[A-Za-z_][A-Za-z0-9_.]*\s*\}\})")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

texts = st.text(alphabet=st.sampled_from(list("ab-_.{} /:é1A\t")), max_size=60) | st.text(
    max_size=40
)


@given(texts)
def test_split_templates_matches_the_regex(text: str) -> None:
    assert split_templates(text) == _TEMPLATE.split(text)


@given(texts)
def test_sanitize_matches_the_regex(text: str) -> None:
    want = "".join(p if i % 2 else _UNSAFE.sub("-", p) for i, p in enumerate(_TEMPLATE.split(text)))
    assert sanitize(text) == want


def test_stable_digest_is_fixed() -> None:
    # Changing this value changes every shortened run id: a new major version of core.
    assert stable_digest("") == "cbf29ce4"
    assert stable_digest("flyte") == stable_digest("flyte")
    assert len(stable_digest("x" * 1000)) == 8


def test_import_loads_only_a_few_stdlib_modules() -> None:
    code = (
        "import sys; before = set(sys.modules); import flyteplugins.wandb_core; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added = [m for m in out.stdout.split() if not m.startswith("flyteplugins")]
    assert added == ["__future__"]


def test_typing_names_are_created_on_demand() -> None:
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
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        core.Nope  # noqa: B018
