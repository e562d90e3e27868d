"""PEPITA (Dellaferrera & Kreiman, *Error-driven input modulation: solving the credit assignment problem without a
backward pass*, ICML 2022): two forward passes, the second on the input modulated by the output error through a fixed
random matrix; every layer learns from the difference of its activities in the two passes, without a backward pass.

Network (:class:`PepitaNetwork`): the zoo's MLP (:mod:`zoo.archs.mlp`, ``h_l = f(W_l h_{l-1} + b_l)``, logits
``W_L h_{L-1} + b_L``) plus the fixed projection ``F`` (the persistent buffer ``projection`` ``[d_0, classes]``,
saved in the checkpoint, restored on load, never trained). As in the paper, ``F`` is uniform in ``[-s, s]`` with
``s = projection_scale * sqrt(6 / d_0)`` (0.05 times the He-uniform bound of the input dimension ``d_0 = C*H*W``)
and the weights are He-uniform (``U(-sqrt(6 / fan_in), +sqrt(6 / fan_in))``); the biases start at zero. Inference
is the MLP's plain forward pass. The architecture defaults are the MLP's (so ``benchmarks/rule_overhead.py`` times it
against ``bp_mlp`` on the same network); the recipes set the paper's one hidden layer of 1024 units and 10% dropout.

One training step on a batch (:class:`PepitaTrainer`, the paper's Algorithm 1, with dropout masks ``m_l`` drawn once
and shared by both passes, as in the authors' code):

1. standard pass: ``h_0`` is the normalised flattened image ``(x - mean) / std`` (what the first layer reads),
   ``h_l = m_l * f(W_l h_{l-1} + b_l)``; error ``e = softmax(logits) - onehot(y)``;
2. modulated pass on the modulated image ``x + F e``: the paper adds ``F e`` to the image in ``[0, 1]``, and so does
   the zoo, before the model's own normalisation, so ``F`` keeps the paper's scale in pixel units and the first
   layer reads ``h_0^mod = h_0 + F e / std``; ``h_l^mod = m_l * f(W_l h_{l-1}^mod + b_l)`` (same masks);
3. updates (batch means, :func:`pepita_update`)::

       dW_l = (h_l - h_l^mod) (h_{l-1}^mod)^T     hidden layers l = 1 .. L-1 (the first reads h_0^mod)
       dW_L = e (h_{L-1}^mod)^T                   output layer, with the first pass's error e
       db_l = h_l - h_l^mod,   db_L = e          (a bias is a weight from a constant unit, which F leaves alone)

   applied as ``W <- W - lr * dW`` by SGD with momentum 0.9 (the paper's optimiser). The paper's learning-rate
   decay (x0.1 at epochs 60 and 90 of 100) is ``schedule="step"``: x0.1 at 60 % and 90 % of the run.

The output layer's update uses ``e`` from the first pass, as Algorithm 1 writes it; the authors' reference code
uses the modulated pass's error, which differs from it by the small ``F e`` effect on the logits.

Alignment (:func:`pepita_alignment`): per layer, the angle between ``-dW`` (dropout off) and backprop's ``-dL/dW``
of the cross-entropy on the same batch.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zoo.archs.mlp import ARCHITECTURE as MLP_ARCHITECTURE
from zoo.archs.mlp import MLP
from zoo.engine.distributed import SINGLE, Collective
from zoo.engine.options import check_schedule, make_optimizer, schedule_factor
from zoo.engine.trainer import Trainer
from zoo.evaluation.alignment import compare
from zoo.rules.base import Rule, Variant

PAPER = ("Dellaferrera & Kreiman, Error-driven input modulation: solving the credit assignment problem without a "
         "backward pass (ICML 2022)")


class PepitaNetwork(MLP):
    """The MLP with He-uniform weights, zero biases and the fixed input projection ``F`` (buffer ``projection``
    ``[d_0, num_classes]``, uniform in ``+-projection_scale * sqrt(6 / d_0)``). ``forward`` is the MLP's."""

    projection: Tensor

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 hidden: Sequence[int] = (800, 800), dropout: float = 0.0, activation: str = "relu",
                 projection_scale: float = 0.05) -> None:
        super().__init__(in_shape, num_classes, mean, std, hidden=hidden, dropout=dropout, activation=activation)
        if not (math.isfinite(projection_scale) and projection_scale > 0):
            raise ValueError(f"projection_scale must be a positive number, got {projection_scale!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        for layer in [*self.hidden, self.head]:
            assert isinstance(layer, nn.Linear)
            bound = math.sqrt(6.0 / layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)
        inputs = math.prod(self.input.in_shape)
        bound = projection_scale * math.sqrt(6.0 / inputs)
        self.register_buffer("projection", torch.empty(inputs, num_classes).uniform_(-bound, bound))


def forward_pass(model: PepitaNetwork, h0: Tensor,
                 masks: Sequence[Tensor] | None = None) -> tuple[list[Tensor], Tensor]:
    """One forward pass from the flattened normalised input ``h0``: ``([h_0, h_1, ..., h_{L-1}], logits)``, each
    hidden activity multiplied by its dropout mask (``masks[l - 1]``; ``None``: no dropout)."""
    hs = [h0]
    for index, layer in enumerate(model.hidden):
        h = model.act(layer(hs[-1]))
        hs.append(h if masks is None else h * masks[index])
    return hs, model.head(hs[-1])


def dropout_masks(model: PepitaNetwork, rows: int, collective: Collective = SINGLE) -> list[Tensor] | None:
    """Inverted-dropout masks (``Bernoulli(1 - p) / (1 - p)``), one per hidden layer, for both passes of a step; drawn
    for the global batch of a data-parallel run and sliced. ``None`` without dropout."""
    p = float(model.drop.p)
    if p == 0.0:
        return None
    like = model.projection  # the model's dtype and device
    masks = []
    for layer in model.hidden:
        assert isinstance(layer, nn.Linear)
        keep = torch.full((rows * collective.world, layer.out_features), 1.0 - p, dtype=like.dtype,
                          device=like.device)
        masks.append(collective.local(torch.bernoulli(keep)) / (1.0 - p))
    return masks


def pepita_update(model: PepitaNetwork, x: Tensor, y: Tensor,
                  masks: Sequence[Tensor] | None = None) -> tuple[dict[str, Tensor], Tensor]:
    """PEPITA's ``dW`` and ``db`` on a batch (see the module doc), keyed by parameter name, as batch means; the
    weights move by ``-lr * dW``. Also returns the first pass's logits. Computes no gradients."""
    with torch.no_grad():
        h0 = model.input(x).flatten(1)
        hs, logits = forward_pass(model, h0, masks)
        error = F.softmax(logits, dim=1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)
        image_mod = x.to(h0.dtype) + (error @ model.projection.t()).view(x.shape)
        modulated, _ = forward_pass(model, model.input(image_mod).flatten(1), masks)
        n = x.shape[0]
        deltas: list[Tensor] = [a - b for a, b in zip(hs[1:], modulated[1:])] + [error]
        update: dict[str, Tensor] = {}
        for index, (name, delta) in enumerate(zip(layer_names(model), deltas)):
            update[f"{name}.weight"] = delta.t() @ modulated[index] / n
            update[f"{name}.bias"] = delta.mean(0)
    return update, logits


def layer_names(model: PepitaNetwork) -> list[str]:
    """Module names of the fully connected layers in order: ``hidden.0``, ..., ``head``."""
    return [f"hidden.{i}" for i in range(len(model.hidden))] + ["head"]


class PepitaTrainer(Trainer):
    """PEPITA (see the module doc) on a :class:`PepitaNetwork`. Options: ``optimizer`` (``sgd`` | ``adam``; the paper:
    SGD), ``lr``, ``momentum``, ``weight_decay``, ``schedule`` (``step`` | ``cosine`` | ``constant``). Returns the
    cross-entropy of the first pass."""

    state_attrs = ("optimizer",)
    options = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "schedule": "step"}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        if not isinstance(model, PepitaNetwork):
            raise TypeError(f"PepitaTrainer trains a PepitaNetwork, not {type(model).__name__}")
        self.net: PepitaNetwork = model
        self.schedule = check_schedule(str(self.config["schedule"]))
        self.base_lr = float(self.config["lr"])
        self.params = dict(model.named_parameters())
        self.optimizer = make_optimizer(self.params.values(), self.config["optimizer"], self.base_lr,
                                        momentum=float(self.config["momentum"]),
                                        weight_decay=float(self.config["weight_decay"]))

    def learning_rate(self) -> float:
        """The learning rate for the current step."""
        return self.base_lr * schedule_factor(self.schedule, self.progress())

    def step(self, x: Tensor, y: Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        masks = dropout_masks(self.net, x.shape[0], self.collective)
        update, logits = pepita_update(self.net, x, y, masks)
        for name, param in self.params.items():
            param.grad = update[name]
        self.collective.average_(p.grad for p in self.params.values())
        self.optimizer.step()
        self.step_count += 1
        return float(F.cross_entropy(logits, y))


def pepita_rule_update(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """PEPITA's update direction on a batch, ``-dW`` for every parameter (no dropout)."""
    if not isinstance(model, PepitaNetwork):
        raise TypeError(f"PEPITA alignment needs a PepitaNetwork, not {type(model).__name__}")
    update, _ = pepita_update(model, x, y)
    return {name: -delta for name, delta in update.items()}


def pepita_alignment(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """``Family.alignment`` for PEPITA: per layer, the angle between PEPITA's update and backprop's."""
    return compare(model, x, y, pepita_rule_update)


RULES = (
    Rule(name="pepita", learning_rule="pepita",
         description="trained with PEPITA: a second forward pass on the input modulated by the output error through "
                     "a fixed random matrix (stored in the checkpoint); each layer learns from the difference of its "
                     "activities in the two passes, without a backward pass.",
         trainer=PepitaTrainer, paper=PAPER, alignment=pepita_alignment,
         variants={"mlp": Variant(
             summary="Fully connected ReLU net (the recipes: the paper's one hidden layer of 1024 units) trained with "
                     "PEPITA: two forward passes, the second on the input modulated by the output error through a "
                     "fixed random projection (stored in the checkpoint); every layer learns from the difference of "
                     "its activities, without a backward pass.",
             build=PepitaNetwork, options={**MLP_ARCHITECTURE.options, "projection_scale": 0.05},
             extends=MLP_ARCHITECTURE.name)}),
)
