"""Naming and rank logic of the Flyte 2 W&B plugin: pure functions, standard library only."""

# isort: off
# fmt: off
from .__about__ import __version__
from ._ids import (
    MAX_RUN_ID_LENGTH, check_user_id, fit, is_template, is_valid_run_id, make_base, sanitize,
    split_templates,
)
from ._plan import (
    DEFAULT_RANK_SCOPE, DEFAULT_RUN_MODE, RANK_SCOPES, RUN_MODES, LinkTarget, RankScope, Role,
    RunMode, RunPlan, link_targets, parse_nnodes, parse_rank_scope, parse_run_mode, plan, plan_job,
)
from ._topology import DistributedInfo, Topology, TopologyError

__all__ = [
    "DEFAULT_RANK_SCOPE", "DEFAULT_RUN_MODE", "MAX_RUN_ID_LENGTH", "RANK_SCOPES", "RUN_MODES",
    "DistributedInfo", "LinkTarget", "RankScope", "Role", "RunMode", "RunPlan", "Topology",
    "TopologyError", "__version__", "check_user_id", "fit", "is_template", "is_valid_run_id",
    "link_targets", "make_base", "parse_nnodes", "parse_rank_scope", "parse_run_mode", "plan",
    "plan_job", "sanitize", "split_templates",
]
