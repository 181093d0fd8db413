"""Building W&B run ids that the W&B client and server accept, deterministically.

Rules (from the wandb client's own validation and the server's limits):

* at most :data:`MAX_RUN_ID_LENGTH` characters,
* none of the characters the client reserves (``: ; , # ? / '``), no whitespace.

Names coming from Flyte are made valid by replacing every character outside ``[A-Za-z0-9._-]``
with ``-``. A base that is too long is shortened with a stable hash suffix, so the same input
always gives the same id. Flyte link templates such as ``{{.actionName}}`` are kept verbatim:
links are rendered before the real names exist, and Flyte substitutes them later. Each template is
assumed to expand to at most :data:`TEMPLATE_ALLOWANCE` characters when the length is budgeted.
"""

from __future__ import annotations

import re
from typing import Final

MAX_RUN_ID_LENGTH: Final = 128
"""Longest run id produced."""

MAX_SUFFIX_LENGTH: Final = 28
"""Room kept for per-rank suffixes such as ``-worker-12-rank-7``."""

BASE_BUDGET: Final = MAX_RUN_ID_LENGTH - MAX_SUFFIX_LENGTH
"""Longest base (or user-supplied id) before a hash shortens it."""

TEMPLATE_ALLOWANCE: Final = 40
"""Characters a Flyte template placeholder is assumed to expand to."""

RESERVED_CHARACTERS: Final = ":;,#?/'"

# A Flyte template placeholder, such as ``{{.actionName}}`` or ``{{ .inputs.x }}``; the group
# makes ``split`` return literals at even and placeholders at odd indexes.
_TEMPLATE: Final = re.compile(r"(\{\{\s*\.?[A-Za-z_][A-Za-z0-9_.]*\s*\}\})")
_UNSAFE_RUN: Final = re.compile(r"[^A-Za-z0-9._-]+")
_REJECTED: Final = re.compile(r"[\s" + re.escape(RESERVED_CHARACTERS) + "]")


def split_templates(text: str) -> list[str]:
    """Split ``text`` into literals (even indexes) and template placeholders (odd indexes)."""
    return _TEMPLATE.split(text)


def stable_digest(text: str) -> str:
    """Eight hex digits of the 64-bit FNV-1a hash of ``text`` (stable across processes).

    ``hashlib`` has no FNV; this digest is part of every shortened id, so it never changes.
    """
    h = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"[:8]


def is_template(text: str) -> bool:
    """Whether ``text`` contains a Flyte template placeholder such as ``{{.actionName}}``."""
    return _TEMPLATE.search(text) is not None


def sanitize(text: str) -> str:
    """Replace characters W&B rejects in ids with ``-``, keeping template placeholders."""
    parts = split_templates(text)
    return "".join(p if i % 2 else _UNSAFE_RUN.sub("-", p) for i, p in enumerate(parts))


def _cost(parts: list[str]) -> int:
    return sum(TEMPLATE_ALLOWANCE if i % 2 else len(p) for i, p in enumerate(parts))


def fit(text: str, budget: int = BASE_BUDGET) -> str:
    """Shorten ``text`` to ``budget`` characters with a stable hash, never cutting a template."""
    parts = split_templates(text)
    cost = _cost(parts)
    if cost <= budget:
        return text
    digest = stable_digest(text)
    literal_indexes = [i for i in range(0, len(parts), 2)]
    longest = max(literal_indexes, key=lambda i: len(parts[i]))
    # Keep the separator in front of a template that follows the shortened part.
    tail = "-" if longest + 1 < len(parts) and parts[longest].endswith("-") else ""
    keep = len(parts[longest]) - (cost - budget) - (len(digest) + 1)
    if keep - len(tail) < 0:
        raise ValueError(
            f"cannot fit {text!r} into {budget} characters: its templates alone take "
            f"{cost - sum(len(parts[i]) for i in literal_indexes)}"
        )
    parts[longest] = parts[longest][: keep - len(tail)] + "-" + digest + tail
    return "".join(parts)


def make_base(run_name: str, action_name: str) -> str:
    """The base id ``{run_name}-{action_name}``, sanitized and fitted."""
    return clean_base(f"{run_name}-{action_name}")


def clean_base(text: str) -> str:
    """``text`` made a valid base id: sanitized, then fitted (the rule of :func:`make_base`)."""
    return fit(sanitize(text))


def check_user_id(run_id: str) -> str:
    """Validate an id the user chose; returns it fitted to :data:`BASE_BUDGET`.

    Raises ``ValueError`` naming the id when it holds characters W&B rejects.
    """
    if not isinstance(run_id, str) or run_id == "":
        raise ValueError(f"invalid W&B run id {run_id!r}: expected a non-empty string")
    bad = sorted(set(_REJECTED.findall(run_id)))
    if bad:
        raise ValueError(
            f"invalid W&B run id {run_id!r}: it contains {''.join(bad)!r}; W&B rejects "
            f"whitespace and the characters {RESERVED_CHARACTERS!r}"
        )
    return fit(run_id)


def is_valid_run_id(run_id: str) -> bool:
    """Whether the W&B client and server accept ``run_id`` (templates not expanded)."""
    return 0 < len(run_id) <= MAX_RUN_ID_LENGTH and _REJECTED.search(run_id) is None
