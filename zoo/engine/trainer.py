"""What every learning rule provides: a trainer that updates a model one minibatch at a time."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from zoo.engine.distributed import SINGLE, Collective
from zoo.engine.options import check_schedule, checked_options, make_optimizer, schedule_factor


class Trainer(ABC):
    """A learning rule's training step, bound to one model.

    ``config`` holds the rule's hyperparameters as written in a training recipe: ``options`` lists every key the
    rule accepts with its default, and an unknown key raises :class:`ValueError`. The run's length
    (``steps_per_epoch * epochs``) lets rules anneal their learning rate or switch phase by epoch.
    ``collective`` is the group of processes of a data-parallel run (:mod:`zoo.engine.distributed`); a rule combines
    its shard's gradients or updates through it before applying them.

    ``state_attrs`` (collected over the class hierarchy) names the attributes that make up the trainer's state
    between steps: optimisers, nested trainers, tensors and numbers. :meth:`state_dict` /
    :meth:`load_state_dict` save and restore them, so a resumed run continues exactly.
    """

    state_attrs: ClassVar[tuple[str, ...]] = ("step_count",)
    options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        self.model = model
        self.config = checked_options(config, self.options, type(self).__name__)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.epochs = epochs
        self.total_steps = self.steps_per_epoch * max(1, epochs)
        self.step_count = 0
        self.collective = collective

    @abstractmethod
    def step(self, x: Tensor, y: Tensor) -> float:
        """Update the model on one batch of float images ``x`` in ``[0, 1]`` and labels ``y``; return the loss."""

    def describe(self) -> str:
        """One line saying what this trainer changes, for how long and with which options."""
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return (f"{type(self).__name__} trains all {trainable:,} parameters for {self.epochs} epoch(s) with "
                f"{_options_text(self.config)}")

    def epoch(self) -> int:
        """Index of the epoch the next step belongs to."""
        return self.step_count // self.steps_per_epoch

    def progress(self) -> float:
        """Fraction of the run done, in ``[0, 1]``."""
        return min(1.0, self.step_count / self.total_steps)

    def _state_names(self) -> list[str]:
        names: list[str] = []
        for cls in reversed(type(self).__mro__):
            for name in vars(cls).get("state_attrs", ()):
                if name not in names:
                    names.append(name)
        return names

    def state_dict(self) -> dict[str, Any]:
        """The trainer's state between two steps (see ``state_attrs``)."""
        out: dict[str, Any] = {}
        for name in self._state_names():
            value = getattr(self, name)
            out[name] = value.state_dict() if isinstance(value, (torch.optim.Optimizer, Trainer)) else value
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (tensors may be on the CPU; they move to the model's device)."""
        missing = sorted(set(self._state_names()) - set(state))
        if missing:
            raise ValueError(f"{type(self).__name__}: saved state lacks {missing}")
        for name in self._state_names():
            current, saved = getattr(self, name), state[name]
            if isinstance(current, (torch.optim.Optimizer, Trainer)):
                current.load_state_dict(saved)
            elif isinstance(current, Tensor):
                current.copy_(saved)
            else:
                setattr(self, name, saved)


def _options_text(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(options.items()))


class GradientTrainer(Trainer):
    """Minimises cross-entropy with the gradients that the model's layers compute.

    Backprop uses autograd's true gradients. Rules whose layers replace the backward pass (feedback
    alignment, sign symmetry) use this same trainer: the rule lives in the layer, not in the loop.
    Options: ``optimizer`` (``adam`` | ``sgd``), ``lr``, ``momentum`` (SGD), ``weight_decay``,
    ``schedule`` (``cosine`` | ``constant`` | ``step``).
    """

    state_attrs = ("optimizer",)
    options = {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        self.base_lr = float(self.config["lr"])
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, self.config["optimizer"], self.base_lr,
                                        momentum=float(self.config["momentum"]),
                                        weight_decay=float(self.config["weight_decay"]))
        self.schedule = check_schedule(self.config["schedule"])

    def learning_rate(self) -> float:
        """The learning rate for the current step."""
        return self.base_lr * schedule_factor(self.schedule, self.progress())

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy; rules with another objective override this."""
        return nn.functional.cross_entropy(logits, y)

    def step(self, x: Tensor, y: Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(x), y)
        loss.backward()
        self.collective.average_(p.grad for p in self.params)
        self.optimizer.step()
        self.step_count += 1
        return float(loss.detach())
