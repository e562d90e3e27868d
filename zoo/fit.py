"""The epoch loop shared by every learning rule: shuffling, augmentation, progress, per-epoch evaluation.

The rule itself is the family's :class:`~zoo.trainer.Trainer`; this loop only feeds it batches, so
``fit`` fine-tunes any zoo model with its own learning rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from tqdm import tqdm

from zoo.registry import Family

AUGMENTATIONS = ("none", "shift")


@dataclass(frozen=True)
class FitConfig:
    """How long and on what the rule trains; ``rule`` holds the rule's own hyperparameters."""

    epochs: int
    batch_size: int = 100
    seed: int = 0
    augment: str = "none"
    max_shift: int = 2
    rule: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.augment!r}; accepted: {AUGMENTATIONS}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs} and {self.batch_size}")


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by up to ``max_shift`` pixels in each direction, filling with zeros (vectorised)."""
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n, 1, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n, 1, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, 1, h, 1) + dy
    cols = torch.arange(w).view(1, 1, 1, w) + dx
    return padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]


def fit(model: nn.Module, family: Family, images: Tensor, labels: Tensor, config: FitConfig, *,
        on_epoch_end: Callable[[int, float], None] | None = None, progress: bool = True) -> list[float]:
    """Train ``model`` with its family's learning rule on uint8 ``images`` ``[N, C, H, W]``; return the mean
    loss of each epoch. ``on_epoch_end(epoch, loss)`` runs after every epoch (e.g. to evaluate)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = (len(images) + config.batch_size - 1) // config.batch_size
    trainer = family.trainer(model, config.rule, steps_per_epoch, config.epochs)
    losses: list[float] = []
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"{family.name} epoch {epoch + 1}/{config.epochs}",
                   disable=not progress, leave=False)
        for step in bar:
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            x = images[index].to(torch.float32).div_(255.0)
            if config.augment == "shift":
                x = random_shift(x, config.max_shift, generator)
            loss = trainer.step(x, labels[index])
            total += loss
            bar.set_postfix(loss=f"{loss:.4f}")
        losses.append(total / steps_per_epoch)
        model.eval()
        if on_epoch_end is not None:
            on_epoch_end(epoch, losses[-1])
    return losses
