"""Smoke test of an installed flavour: core | plugin | full. Run inside a clean venv."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import subprocess
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
    # The specification's import lines.
    import flyteplugins.wandb as plugin
    from flyteplugins.wandb import (  # noqa: F401
        RankScope,
        RunMode,
        Wandb,
        get_distributed_info,
        get_wandb_run,
        wandb_config,
        wandb_init,
    )

    print("plugin", plugin.__version__)
    # Every public name, sweeps' included where installed; without sweeps too.
    star: dict[str, object] = {}
    exec("from flyteplugins.wandb import *", star)
    assert "wandb_init" in star and "WandbServerUnreachable" in star, sorted(star)
    assert ("wandb_sweep" in star) == (flavour == "full"), sorted(star)
    # The log download behind download_logs=True is found by its entry point, only with sweeps.
    points = {p.name for p in md.entry_points(group="flyteplugins.wandb.download")}
    assert (points == {"after_task", "after_task_async"}) == (flavour == "full"), points
    # Importing the plugin must not import wandb.
    probe = "import sys, flyteplugins.wandb; print('wandb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "import flyteplugins.wandb imported wandb"
    has_sweeps = importlib.util.find_spec("flyteplugins.wandb_sweeps") is not None
    assert has_sweeps == (flavour == "full"), f"sweeps installed={has_sweeps} for {flavour}"
    if flavour == "full":
        import flyteplugins.wandb_sweeps as sw
        from flyteplugins.wandb import (  # noqa: F401
            WandbSweep,
            get_wandb_sweep_id,
            wandb_sweep,
            wandb_sweep_config,
        )

        print("sweeps", sw.__version__)
    else:
        try:
            from flyteplugins.wandb import wandb_sweep  # noqa: F401
        except ImportError as exc:
            if 'pip install "flyteplugins-wandb[sweeps]"' not in str(exc):
                raise AssertionError(f"unhelpful ImportError: {exc}") from exc
        else:
            raise AssertionError("wandb_sweep imported without the sweeps distribution")
print(f"smoke ok: {flavour}")
