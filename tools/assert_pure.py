"""Fail when importing flyteplugins.wandb_core pulls in anything outside the standard library."""

from __future__ import annotations

import sys

before = set(sys.modules)
import flyteplugins.wandb_core  # noqa: E402,F401

added = sorted(set(sys.modules) - before)
stdlib = set(sys.stdlib_module_names)
foreign = [m for m in added if m.split(".")[0] not in stdlib and not m.startswith("flyteplugins")]
if foreign:
    sys.exit(f"flyteplugins.wandb_core imported third-party modules: {foreign}")
print(f"flyteplugins.wandb_core imports only the standard library ({len(added)} modules)")
