"""One epoch of training and one evaluation pass: no CLI, no files, no globals."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class EpochStats:
    """Mean loss and accuracy over ``n`` samples."""

    loss: float
    acc: float
    n: int


def check_batch(x: Tensor, where: str) -> None:
    """Raise a ``ValueError`` if ``x`` holds NaN or infinity."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{where}: the input holds {bad} NaN/inf values; expected finite, "
                         "normalized data")


def train_one_epoch(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
                    optimizer: torch.optim.Optimizer, *, device: torch.device | str = "cpu",
                    on_batch: Callable[[int, float], None] | None = None) -> EpochStats:
    """Train ``model`` on ``batches`` once; returns the running loss and accuracy.

    Args:
        on_batch: Called after each step with ``(batch_index, loss)`` (progress bars, tests).

    Raises:
        ValueError: NaN/inf in a batch.
        FloatingPointError: the loss, or a weight after the last step, became NaN/inf
            (lower the learning rate).
    """
    model.train()
    total_loss, correct, n = 0.0, 0, 0
    for i, (x, y) in enumerate(batches):
        x, y = x.to(device), y.to(device)
        check_batch(x, f"training batch {i}")
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training batch {i}: the loss is {loss.item()}; expected a "
                                     "finite value (lower the learning rate, check the data)")
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
        if on_batch is not None:
            on_batch(i, loss.item())
    # the loss check above sees a diverged step only at the next batch: after the last one,
    # look at the weights themselves, so that a run never saves NaN/inf weights
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise FloatingPointError(f"after the last training step of the epoch, {name} holds "
                                     "NaN/inf values; expected finite weights (lower the "
                                     "learning rate)")
    return EpochStats(total_loss / max(n, 1), correct / max(n, 1), n)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *,
             device: torch.device | str = "cpu") -> EpochStats:
    """Loss and accuracy in ``eval()`` mode (dropout off)."""
    was_training = model.training
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    try:
        for i, (x, y) in enumerate(batches):
            x, y = x.to(device), y.to(device)
            check_batch(x, f"evaluation batch {i}")
            out = model(x)
            total_loss += float(nn.functional.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
    finally:
        model.train(was_training)
    return EpochStats(total_loss / max(n, 1), correct / max(n, 1), n)


def make_optimizer(params: Iterable[nn.Parameter], *, optimizer: str, lr: float, momentum: float,
                   betas: tuple[float, float], weight_decay: float) -> torch.optim.Optimizer:
    """SGD with momentum or Adam, as a recipe names it."""
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {optimizer!r}; expected 'sgd' or 'adam'")
