"""Run modes and rank scopes, and the parsers that turn user input into them."""

from __future__ import annotations

from typing import Final, Literal, cast, get_args

RunMode = Literal["auto", "new", "shared"]
"""How a task's W&B run relates to its parent's: reuse it, always create one, or always join it."""

RankScope = Literal["global", "worker"]
"""Whether a distributed job is one unit for W&B (global) or one unit per worker/node (worker)."""

RUN_MODES: Final[tuple[RunMode, ...]] = cast("tuple[RunMode, ...]", get_args(RunMode))
RANK_SCOPES: Final[tuple[RankScope, ...]] = cast("tuple[RankScope, ...]", get_args(RankScope))

DEFAULT_RUN_MODE: Final[RunMode] = "auto"
DEFAULT_RANK_SCOPE: Final[RankScope] = "global"


def _parse(value: object, allowed: tuple[str, ...], what: str) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    choices = ", ".join(repr(a) for a in allowed)
    raise ValueError(
        f"invalid {what} {value!r} ({type(value).__name__}); expected one of {choices}"
    )


def parse_run_mode(value: object) -> RunMode:
    """Return ``value`` as a :data:`RunMode`; ``ValueError`` names it and the choices."""
    return cast("RunMode", _parse(value, RUN_MODES, "run_mode"))


def parse_rank_scope(value: object) -> RankScope:
    """Return ``value`` as a :data:`RankScope`; ``ValueError`` names it and the choices."""
    return cast("RankScope", _parse(value, RANK_SCOPES, "rank_scope"))
