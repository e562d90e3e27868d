"""What every learning rule provides: a trainer that updates a model one minibatch at a time."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Mapping

import torch
from torch import Tensor, nn


class Trainer(ABC):
    """A learning rule's training step, bound to one model.

    ``config`` holds the rule's hyperparameters as written in a training recipe; the run's length
    (``steps_per_epoch * epochs``) lets rules anneal their learning rate or switch phase by epoch.
    """

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int) -> None:
        self.model = model
        self.config = dict(config)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.epochs = epochs
        self.total_steps = self.steps_per_epoch * max(1, epochs)
        self.step_count = 0

    @abstractmethod
    def step(self, x: Tensor, y: Tensor) -> float:
        """Update the model on one batch of float images ``x`` in ``[0, 1]`` and labels ``y``; return the loss."""

    def epoch(self) -> int:
        """Index of the epoch the next step belongs to."""
        return self.step_count // self.steps_per_epoch

    def progress(self) -> float:
        """Fraction of the run done, in ``[0, 1]``."""
        return min(1.0, self.step_count / self.total_steps)


class GradientTrainer(Trainer):
    """Minimises cross-entropy with the gradients that the model's layers compute.

    Backprop uses autograd's true gradients. Rules whose layers replace the backward pass (feedback
    alignment, sign symmetry) use this same trainer: the rule lives in the layer, not in the loop.
    Config: ``optimizer`` (``adam`` | ``sgd``), ``lr``, ``momentum``, ``weight_decay``,
    ``schedule`` (``cosine`` | ``constant``).
    """

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int) -> None:
        super().__init__(model, config, steps_per_epoch, epochs)
        self.base_lr = float(self.config.get("lr", 1e-3))
        params = [p for p in model.parameters() if p.requires_grad]
        name = self.config.get("optimizer", "adam")
        decay = float(self.config.get("weight_decay", 0.0))
        if name == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=self.base_lr, weight_decay=decay)
        elif name == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=self.base_lr, momentum=float(self.config.get("momentum", 0.9)),
                                             weight_decay=decay)
        else:
            raise ValueError(f"unknown optimizer {name!r}; accepted: 'adam', 'sgd'")
        self.schedule = self.config.get("schedule", "cosine")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; accepted: 'cosine', 'constant'")

    def learning_rate(self) -> float:
        """The learning rate for the current step."""
        if self.schedule == "constant":
            return self.base_lr
        return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * self.progress()))

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy; rules with another objective override this."""
        return nn.functional.cross_entropy(logits, y)

    def step(self, x: Tensor, y: Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        self.step_count += 1
        return float(loss.detach())
