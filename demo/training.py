"""A tiny PyTorch model on synthetic data: what the demo's tasks train (CPU, well under a second).

Two interleaved spirals (a classic two-class toy problem that a linear model cannot solve) are fit
by a small MLP with full-batch Adam. Everything is seeded, so a run is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

EpochCallback = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def spirals(n: int = 400, noise: float = 0.25, seed: int = 0) -> Data:
    """``n`` points on two interleaved spirals, shuffled, 75 % for training and 25 % held out."""
    gen = torch.Generator().manual_seed(seed)
    half = n // 2
    t = torch.sqrt(torch.rand(half, generator=gen)) * 3 * math.pi
    arm = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / (3 * math.pi)
    x = torch.cat([arm, -arm]) + noise * 0.1 * torch.randn(2 * half, 2, generator=gen)
    y = torch.cat([torch.zeros(half), torch.ones(half)]).long()
    order = torch.randperm(2 * half, generator=gen)
    x, y = x[order], y[order]
    cut = (3 * len(x)) // 4
    return Data(x[:cut], y[:cut], x[cut:], y[cut:])


def mlp(hidden: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, 2),
    )


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(cross-entropy loss, accuracy) of ``model`` on ``x``/``y``."""
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, accuracy


def fit(
    *,
    lr: float,
    hidden: int,
    epochs: int,
    on_epoch: EpochCallback,
    data: Data | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Train the MLP full-batch; call ``on_epoch`` with each epoch's metrics; return the last."""
    return fit_model(lr=lr, hidden=hidden, epochs=epochs, on_epoch=on_epoch, data=data, seed=seed)[
        1
    ]


def fit_model(
    *,
    lr: float,
    hidden: int,
    epochs: int,
    on_epoch: EpochCallback,
    data: Data | None = None,
    seed: int = 0,
) -> tuple[nn.Module, dict[str, float]]:
    """:func:`fit`, also returning the trained model."""
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on a shared machine
    data = data or spirals(seed=seed)
    model = mlp(hidden, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    metrics: dict[str, float] = {}
    for epoch in range(epochs):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(data.x_train), data.y_train)
        loss.backward()
        opt.step()
        train_loss, train_acc = evaluate(model, data.x_train, data.y_train)
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val)
        metrics = {
            "epoch": float(epoch),
            "loss": train_loss,
            "accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
        }
        on_epoch(metrics)
    return model, metrics
