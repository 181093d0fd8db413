"""Valid, deterministic W&B run ids from Flyte names: unsafe characters become ``-``, a base too
long is shortened with a stable hash, and Flyte templates such as ``{{.actionName}}`` are kept
verbatim (Flyte fills them in later), budgeted at :data:`TEMPLATE_ALLOWANCE` characters each."""

from __future__ import annotations

import re
from typing import Final

MAX_RUN_ID_LENGTH: Final = 128
BASE_BUDGET: Final = MAX_RUN_ID_LENGTH - 28  # room for suffixes such as "-worker-12-rank-7"
TEMPLATE_ALLOWANCE: Final = 40
RESERVED_CHARACTERS: Final = ":;,#?/'"  # the client rejects these (and whitespace) in ids

# The group makes split() return literals at even and placeholders at odd indexes.
_TEMPLATE: Final = re.compile(r"(\{\{\s*\.?[A-Za-z_][A-Za-z0-9_.]*\s*\}\})")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_REJECTED: Final = re.compile(r"[\s" + re.escape(RESERVED_CHARACTERS) + "]")


def split_templates(text: str) -> list[str]:
    """Split ``text`` into literals (even indexes) and template placeholders (odd indexes)."""
    return _TEMPLATE.split(text)


def stable_digest(text: str) -> str:
    """Eight hex digits of the 64-bit FNV-1a hash of ``text``: part of every shortened id."""
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"[:8]


def is_template(text: str) -> bool:
    """Whether ``text`` contains a Flyte template placeholder such as ``{{.actionName}}``."""
    return _TEMPLATE.search(text) is not None


def sanitize(text: str) -> str:
    """Replace characters W&B rejects in ids with ``-``, keeping template placeholders."""
    return "".join(p if i % 2 else _UNSAFE.sub("-", p) for i, p in enumerate(split_templates(text)))


def fit(text: str, budget: int = BASE_BUDGET) -> str:
    """Shorten ``text`` to ``budget`` characters with a stable hash, never cutting a template."""
    parts = split_templates(text)
    literals = sum(len(p) for p in parts[::2])
    cost = literals + TEMPLATE_ALLOWANCE * (len(parts) // 2)
    if cost <= budget:
        return text
    digest = stable_digest(text)
    i = max(range(0, len(parts), 2), key=lambda k: len(parts[k]))  # the longest literal
    # Keep the separator in front of a template that follows the shortened part.
    tail = "-" if i + 1 < len(parts) and parts[i].endswith("-") else ""
    keep = len(parts[i]) - (cost - budget) - len(digest) - 1 - len(tail)
    if keep < 0:
        raise ValueError(
            f"cannot fit {text!r} into {budget} characters: its templates alone take "
            f"{cost - literals}"
        )
    parts[i] = f"{parts[i][:keep]}-{digest}{tail}"
    return "".join(parts)


def make_base(run_name: str, action_name: str) -> str:
    """The base id ``{run_name}-{action_name}``, sanitized and fitted."""
    return fit(sanitize(f"{run_name}-{action_name}"))


def check_user_id(run_id: str) -> str:
    """Validate an id the user chose and fit it to :data:`BASE_BUDGET`; ``ValueError`` names it."""
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"invalid W&B run id {run_id!r}: expected a non-empty string")
    if bad := sorted(set(_REJECTED.findall(run_id))):
        raise ValueError(
            f"invalid W&B run id {run_id!r}: it contains {''.join(bad)!r}; W&B rejects "
            f"whitespace and the characters {RESERVED_CHARACTERS!r}"
        )
    return fit(run_id)


def is_valid_run_id(run_id: str) -> bool:
    """Whether the W&B client and server accept ``run_id`` (templates not expanded)."""
    return 0 < len(run_id) <= MAX_RUN_ID_LENGTH and _REJECTED.search(run_id) is None
