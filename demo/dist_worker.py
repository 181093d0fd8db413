"""One worker of the demo's 2-process ``torchrun`` job (gloo, CPU).

``tasks.distributed`` starts ``python -m torch.distributed.run --nproc-per-node 2 dist_worker.py
SPEC.json``. Like the ``Elastic`` plugin of ``flyteplugins-pytorch`` does in every worker of a
cluster pod, each worker restores the Flyte task's context (its run and action names and its
``custom_context``) and then runs the task's code: here, data-parallel training of the demo's MLP
(gradients averaged with a real ``all_reduce``) twice, under two ``@wandb_init`` settings:

* ``run_mode="new"``: every rank records its own run ``{base}-rank-{rank}``, grouped as ``{base}``;
* ``run_mode="auto"`` (global scope): only rank 0 logs, and since the task is a child of the
  pipeline's task, into the pipeline's run; rank 1 gets no run and never imports ``wandb``.

Each worker writes what it saw to ``rank-<r>.json`` next to the spec.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import training
from torch import nn

from flyteplugins.wandb import get_distributed_info, get_wandb_run, wandb_init

EPOCHS = 30


def data_parallel_fit(tag: str) -> dict[str, Any]:
    """Each rank trains on its half of the data; gradients are averaged across ranks."""
    rank, world = dist.get_rank(), dist.get_world_size()
    data = training.spirals()
    x, y = data.x_train[rank::world], data.y_train[rank::world]
    model = training.mlp(hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    run = get_wandb_run()
    loss_value = 0.0
    for epoch in range(EPOCHS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        for p in model.parameters():
            assert p.grad is not None
            dist.all_reduce(p.grad)
            p.grad /= world
        opt.step()
        total = torch.tensor([loss.item()])
        dist.all_reduce(total)  # the mean loss over all ranks
        loss_value = total.item() / world
        if run is not None:
            run.log({"epoch": epoch, "loss": loss_value, "rank_loss": loss.item(), "rank": rank})
    return {
        "tag": tag,
        "rank": rank,
        "has_run": run is not None,
        "run_id": getattr(run, "id", None),
        "group": getattr(run, "group", None) or None,
        "info": get_distributed_info(),
        "loss": loss_value,
    }


@wandb_init(run_mode="new")
def per_rank_runs() -> dict[str, Any]:
    return data_parallel_fit("new")


@wandb_init(run_mode="auto", rank_scope="global")
def rank_zero_only() -> dict[str, Any]:
    return data_parallel_fit("auto")


def main(spec_path: str) -> int:
    import flyte.report
    from flyte._context import internal_ctx
    from flyte.models import ActionID, RawDataPath, TaskContext

    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec_path).parent
    root = out / f"flyte-rank-{os.environ['RANK']}"
    root.mkdir(parents=True, exist_ok=True)
    # The context the Elastic plugin restores in a worker (flyte offers no public constructor).
    tctx = TaskContext(
        action=ActionID(
            name=spec["action_name"],
            run_name=spec["run_name"],
            project=spec["project"],
            domain=spec["domain"],
        ),
        version="demo",
        raw_data_path=RawDataPath(path=str(root)),
        output_path=str(root),
        run_base_dir=str(root),
        report=flyte.report.Report(name=spec["action_name"]),
        mode="remote",
        custom_context=dict(spec["custom_context"]),
    )
    dist.init_process_group("gloo")
    try:
        with internal_ctx().replace_task_context(tctx):
            seen = [per_rank_runs(), rank_zero_only()]
    finally:
        dist.destroy_process_group()
    (out / f"rank-{os.environ['RANK']}.json").write_text(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
