"""The course's one training loop and one epoch loop, shared by lesson 7's VAE and lesson 8's conditional models.

:func:`fit` is the schedule (Adam, a linear KL warm-up to β, cosine learning-rate decay, a tqdm bar over epochs);
:func:`run_epoch` is one pass over the batches, a gradient step per batch when given an optimizer, evaluation
otherwise. Lesson 7's students write their own epoch (exercise 7.3) and pass it to ``utils.vae.train_vae``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from utils.device import memory_format
from utils.settings import MemoryLayout

LOSS_NAMES = ("loss", "reconstruction", "kl")
BatchLosses = Callable[[Any], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass
class TrainingHistory:
    """Per-epoch averages (per image, nats) on the training and validation splits."""

    train: list[dict[str, float]] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)


def kl_weight(epoch: int, beta: float, warmup_epochs: int) -> float:
    """Linear KL warm-up: β · min(1, (epoch + 1) / warmup_epochs)."""
    return beta * min(1.0, (epoch + 1) / max(1, warmup_epochs))


def batch_size_of(batch: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """The number of designs in a batch: a tensor ``(B, …)`` or a tuple whose first entry is one."""
    return len(batch[0]) if isinstance(batch, tuple | list) else len(batch)


def run_epoch(model: nn.Module, batches: Iterable[Any], batch_losses: BatchLosses,
              optimizer: torch.optim.Optimizer | None = None) -> dict[str, float]:
    """One pass over ``batches``; ``batch_losses(batch)`` returns (loss, reconstruction, KL), each a batch mean.

    With an ``optimizer``: the model in training mode, a gradient step on the loss per batch. Without: the model
    in evaluation mode and no graph. Returns the epoch's averages per image, each batch weighted by its size; the
    sums stay on the device (one host synchronisation per epoch, none per batch)."""
    model.train(optimizer is not None)
    totals, count = 0.0, 0
    with torch.set_grad_enabled(optimizer is not None):
        for batch in batches:
            loss, reconstruction, kl = batch_losses(batch)
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            size = batch_size_of(batch)
            totals = totals + torch.stack([loss.detach(), reconstruction.detach(), kl.detach()]) * size
            count += size
    return dict(zip(LOSS_NAMES, (totals / count).tolist(), strict=True))


def fit(model: nn.Module, epochs: int, lr: float, beta: float, warmup_epochs: int, progress: bool,
        train_one: Callable[[torch.optim.Optimizer, float], dict[str, float]],
        validate_one: Callable[[float], dict[str, float]], layout: MemoryLayout = "contiguous") -> TrainingHistory:
    """The schedule every training of the course shares: Adam, a linear KL warm-up to β, cosine learning-rate decay
    to lr/20, and a tqdm bar over epochs. Each epoch calls ``train_one(optimizer, kl_weight)`` then
    ``validate_one(kl_weight)``; both return the epoch's averages, which the history keeps. The model's
    convolution weights are put in ``layout``, the batches' (utils.data.layout_of)."""
    model.to(memory_format=memory_format(layout))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=lr / 20)
    history = TrainingHistory()
    bar = tqdm(range(epochs), desc="training", disable=not progress)
    for epoch in bar:
        weight = kl_weight(epoch, beta, warmup_epochs)
        history.train.append(train_one(optimizer, weight))
        schedule.step()
        history.validation.append(validate_one(weight))
        bar.set_postfix(val_loss=f"{history.validation[-1]['loss']:.1f}")
    return history
