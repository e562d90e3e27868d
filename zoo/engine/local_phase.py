"""The two-phase trainer of every network with a Hebbian layer: a local rule learns the Hebbian layer, gradients
train the head. Each Hebbian rule subclasses :class:`HebbianPhaseTrainer` with its own :meth:`hebbian_step`."""
from __future__ import annotations

import warnings
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from zoo.archs.hebbian import HebbianNet
from zoo.engine.distributed import SINGLE, Collective
from zoo.engine.trainer import GradientTrainer, Trainer


def annealed_lr(lr0: float, step: int, total_steps: int) -> float:
    """Linear annealing ``lr0 * (1 - step / total_steps)``, clamped at 0."""
    return lr0 * max(0.0, 1.0 - step / max(1, total_steps))


class HebbianPhaseTrainer(Trainer):
    """A local rule for the Hebbian layer of a :class:`~zoo.archs.hebbian.HebbianNet`, then (or while) gradients
    train the head.

    Epochs ``[0, hebbian_epochs)`` run :meth:`hebbian_step` (the local rule) on every batch; the head is
    trained with gradients in the remaining epochs, and also during the Hebbian epochs when
    ``head_during_hebbian`` is true. If ``fit.epochs <= hebbian_epochs`` the whole run is unsupervised.

    Options (flat, in the recipe's ``fit.rule``): ``hebbian_epochs``, ``hebbian_lr`` (annealed linearly to 0
    over the Hebbian steps), the rule's own keys (a subclass adds them to ``options``), and the head's
    ``head_optimizer`` (adam | sgd), ``head_lr``, ``head_schedule`` (cosine | constant | step, over the head's epochs),
    ``head_weight_decay``, ``head_momentum``. Unknown keys are rejected.
    """

    head_trainer_class: ClassVar[type[GradientTrainer]] = GradientTrainer
    head_during_hebbian_default: ClassVar[bool] = False
    state_attrs = ("head_trainer", "hebbian_step_count")
    options: ClassVar[Mapping[str, Any]] = {
        "hebbian_epochs": 1, "hebbian_lr": 0.02, "head_during_hebbian": None, "head_optimizer": "adam",
        "head_lr": 1e-3, "head_schedule": "cosine", "head_weight_decay": 0.0, "head_momentum": 0.9}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        if not isinstance(model, HebbianNet):
            raise TypeError(f"{type(self).__name__} trains HebbianNet models, not {type(model).__name__}")
        merged = self.config
        if merged["head_during_hebbian"] is None:
            merged["head_during_hebbian"] = self.head_during_hebbian_default
        self.net: HebbianNet = model
        self.hebbian_epochs = min(int(merged["hebbian_epochs"]), epochs)
        self.hebbian_total_steps = self.hebbian_epochs * self.steps_per_epoch
        self.hebbian_lr0 = float(merged["hebbian_lr"])
        self.head_during_hebbian = bool(merged["head_during_hebbian"])
        head_epochs = epochs if self.head_during_hebbian else epochs - self.hebbian_epochs
        self.head_epochs = max(0, head_epochs)
        if self.head_epochs == 0 and epochs > 0:
            warnings.warn(f"{type(self).__name__}: all {epochs} epochs are Hebbian (hebbian_epochs="
                          f"{merged['hebbian_epochs']}): the head is not trained in this run", stacklevel=3)
        head_config = {"optimizer": merged["head_optimizer"], "lr": merged["head_lr"],
                       "schedule": merged["head_schedule"], "weight_decay": merged["head_weight_decay"],
                       "momentum": merged["head_momentum"], **self.head_config_extra(merged)}
        self.head_trainer = self.head_trainer_class(model, head_config, self.steps_per_epoch, max(1, self.head_epochs),
                                                    collective=collective)
        self.hebbian_step_count = 0

    def describe(self) -> str:
        """Which phase trains what: the Hebbian layer by the local rule, the head by gradients, or both."""
        hebbian = (f"the Hebbian layer by {type(self).__name__}'s local rule in epochs 1-{self.hebbian_epochs} "
                   f"(hebbian_lr {self.hebbian_lr0}, annealed to 0)" if self.hebbian_epochs else
                   "not the Hebbian layer (hebbian_epochs=0)")
        if self.head_epochs == 0:
            head = "not the head (every epoch is Hebbian)"
        elif self.head_during_hebbian:
            head = f"the head by gradients in all {self.epochs} epochs"
        else:
            head = f"the head by gradients in epochs {self.hebbian_epochs + 1}-{self.epochs}"
        options = ", ".join(f"{k}={v}" for k, v in sorted(self.config.items()) if k.startswith("head_"))
        return f"trains {hebbian}; {head} ({options})"

    def head_config_extra(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Extra keys passed to the head's gradient trainer (e.g. BioCell's loss power)."""
        return {}

    def hebbian_lr(self) -> float:
        """The local rule's learning rate at the current Hebbian step (linear annealing to 0)."""
        return annealed_lr(self.hebbian_lr0, self.hebbian_step_count, self.hebbian_total_steps)

    def in_hebbian_phase(self) -> bool:
        """Whether the next step belongs to the Hebbian epochs."""
        return self.epoch() < self.hebbian_epochs

    def hebbian_step(self, x: Tensor) -> float:  # pragma: no cover - abstract
        """One local-rule update of the Hebbian layer on float images ``x``; returns a progress figure."""
        raise NotImplementedError

    def step(self, x: Tensor, y: Tensor) -> float:
        if self.in_hebbian_phase():
            with torch.no_grad():
                loss = self.hebbian_step(x)
            self.hebbian_step_count += 1
            if self.head_during_hebbian:
                loss = self.head_trainer.step(x, y)
        else:
            loss = self.head_trainer.step(x, y)
        self.step_count += 1
        return loss
