"""A PyTorch Elastic task logged to W&B, runnable on one machine (see docs/distributed.md).

* ``torchrun ... docs/examples/train_elastic.py``: every worker calls the decorated task
  directly, as an Elastic worker does in a cluster.
* ``flyte.with_runcontext(mode="local").run(train, steps=5)``: Flyte runs the task inline, as
  one process without workers; ``init_distributed`` then makes a process group of one.
"""

from __future__ import annotations

import os
import sys

import flyte
import torch
import torch.distributed as dist

from flyteplugins.pytorch.task import Elastic
from flyteplugins.wandb import get_distributed_info, get_wandb_run, wandb_init

env = flyte.TaskEnvironment(
    name="try_elastic",
    plugin_config=Elastic(nnodes=2, nproc_per_node=2),
)


def init_distributed() -> None:
    if "RANK" in os.environ:  # a worker that torchrun (or the Elastic plugin) started
        dist.init_process_group("gloo")
    else:  # Flyte's local mode: the task runs inline, as the only process
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


@wandb_init(project="try-distributed", rank_scope="worker")
@env.task
def train(steps: int) -> float:
    init_distributed()
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    run = get_wandb_run()  # None on the ranks that do not log
    info = get_distributed_info() or {"rank": 0, "worker_index": 0}
    loss = torch.zeros(())
    for _ in range(steps):
        x = torch.randn(16, 4)
        loss = torch.nn.functional.mse_loss(model(x), x.sum(dim=1, keepdim=True))
        optimizer.zero_grad()
        loss.backward()  # DDP averages the gradients of every rank here
        optimizer.step()
        if run is not None:
            run.log({"loss": loss.item(), "rank": info["rank"], "worker": info["worker_index"]})
    dist.destroy_process_group()
    return float(loss.item())


if __name__ == "__main__":
    train(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
