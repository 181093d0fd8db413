"""Smoke test of an installed flavour: core | plugin | full. Run inside a clean venv."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import sys

flavour = sys.argv[1]
installed = {d.metadata["Name"].lower() for d in md.distributions()}

import flyteplugins.wandb_core as core  # noqa: E402

assert core.plan("new", "global", None, "r-a").run_id == "r-a"
if flavour == "core":
    heavy = {"flyte", "wandb", "torch", "flyteplugins-wandb", "flyteplugins-wandb-sweeps"}
    assert not heavy & installed, f"core alone pulled in {sorted(heavy & installed)}"
    print("core alone:", sorted(installed))
else:
    import flyteplugins.wandb as plugin

    print("plugin", plugin.__version__)
    has_sweeps = importlib.util.find_spec("flyteplugins.wandb_sweeps") is not None
    assert has_sweeps == (flavour == "full"), f"sweeps installed={has_sweeps} for {flavour}"
    if flavour == "full":
        import flyteplugins.wandb_sweeps as sw

        print("sweeps", sw.__version__)
print(f"smoke ok: {flavour}")
