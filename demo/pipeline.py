"""The demo pipeline (grows with the plugin)."""

from __future__ import annotations

from flyteplugins.wandb_core import plan_job


def main() -> None:
    for topology, p in plan_job("auto", "global", 1, 2, "demo-a0"):
        print(topology.rank, p.role, p.run_id)


if __name__ == "__main__":
    main()
