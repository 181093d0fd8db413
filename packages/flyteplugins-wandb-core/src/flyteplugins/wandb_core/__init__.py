"""Naming and rank logic of the Flyte 2 Weights & Biases plugin.

Pure functions over small immutable records; standard library only, no I/O. Importing it stays
cheap (no ``typing``, ``dataclasses``, ``re`` or ``hashlib``): every rank of a distributed job
imports it, including the ranks that never log. The typing-only names ``RunMode``,
``RankScope``, ``Role`` and ``DistributedInfo`` are created on first access.
"""

from __future__ import annotations

from .__about__ import __version__
from ._ids import (
    MAX_RUN_ID_LENGTH,
    check_user_id,
    fit,
    is_template,
    is_valid_run_id,
    make_base,
    sanitize,
    split_templates,
)
from ._links import LinkTarget, link_targets, parse_nnodes
from ._modes import (
    DEFAULT_RANK_SCOPE,
    DEFAULT_RUN_MODE,
    RANK_SCOPES,
    RUN_MODES,
    parse_rank_scope,
    parse_run_mode,
)
from ._plan import RunPlan, plan, plan_job
from ._topology import Topology, TopologyError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._modes import RankScope, RunMode
    from ._plan import Role
    from ._types import DistributedInfo

_TYPING_NAMES = frozenset({"RunMode", "RankScope", "Role", "DistributedInfo"})


def __getattr__(name: str) -> object:
    if name in _TYPING_NAMES:
        from . import _types

        value: object = getattr(_types, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_RANK_SCOPE",
    "DEFAULT_RUN_MODE",
    "MAX_RUN_ID_LENGTH",
    "RANK_SCOPES",
    "RUN_MODES",
    "DistributedInfo",
    "LinkTarget",
    "RankScope",
    "Role",
    "RunMode",
    "RunPlan",
    "Topology",
    "TopologyError",
    "__version__",
    "check_user_id",
    "fit",
    "is_template",
    "is_valid_run_id",
    "link_targets",
    "make_base",
    "parse_nnodes",
    "parse_rank_scope",
    "parse_run_mode",
    "plan",
    "plan_job",
    "sanitize",
    "split_templates",
]
