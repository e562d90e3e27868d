"""Difference target propagation (DTP; Lee, Zhang, Fischer & Bengio 2015): every layer learns to reach a *target*
for its activation, and targets travel down the network through learned approximate inverses, not gradients.

Network (:class:`DTPNetwork`): the two-hidden-layer MLP (``h_l = f(W_l h_{l-1} + b_l)``, ``f = tanh`` by default)
plus one learned inverse per hidden layer above the first, ``g_l(h_l) = f(V_l h_l + c_l) ~ h_{l-1}``. The forward
pass (inference) is the MLP's; the inverses are only used in training and are saved in the checkpoint so that
fine-tuning continues with them.

One training step on a batch (:class:`DTPTrainer`), as in Lee et al. (2015) with the top target set by a gradient
step on the last hidden layer (the common variant of Bartunov et al. 2018):

1. forward pass, keeping ``h_0`` (the normalised, flattened image), ``h_1 ... h_L`` and the logits, each layer
   applied to the detached activation below it (:func:`local_forward`);
2. inverse training (``inverse_lr``): ``|| g_l(f_l(h_{l-1} + eps)) - (h_{l-1} + eps) ||^2`` with
   ``eps ~ N(0, noise^2)``, summed over units, averaged over the batch, for every inverse (:func:`inverse_loss`);
3. top target ``h^_L = h_L - target_lr * dL/dh_L`` with ``L`` the cross-entropy *summed* over the batch (so each
   example moves by ``target_lr`` times its own gradient);
4. difference correction down the layers with the updated inverses:
   ``h^_{l-1} = h_{l-1} + g_l(h^_l) - g_l(h_l)`` for ``l = L .. 2`` (3 and 4: :func:`compute_targets`);
5. forward training (``lr``): hidden layer ``l`` minimises ``|| f_l(h_{l-1}) - h^_l ||^2`` with ``h_{l-1}`` and the
   target held fixed (a purely local loss); the output layer minimises the cross-entropy of its own input
   (the one layer where error and target coincide) (:func:`forward_loss`).

Each parameter only receives the gradient of its own layer's local loss.
"""
from __future__ import annotations

from dataclasses import dataclass
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


class DTPNetwork(MLP):
    """The MLP with an activation option and the learned inverses ``inverses[l - 1]: h_l -> h_{l-1}`` for each
    hidden layer ``l >= 2`` (``len(hidden) - 1`` of them). ``forward`` and ``features`` are the MLP's."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 hidden: Sequence[int] = (800, 800), dropout: float = 0.0, activation: str = "tanh") -> None:
        super().__init__(in_shape, num_classes, mean, std, hidden=hidden, dropout=dropout, activation=activation)
        widths = list(hidden)
        self.inverses = nn.ModuleList(nn.Linear(widths[i], widths[i - 1]) for i in range(1, len(widths)))

    def inverse(self, layer: int, h: Tensor) -> Tensor:
        """``g_layer(h)``: the learned approximate inverse of hidden layer ``layer`` (1-based, ``>= 2``)."""
        return self.act(self.inverses[layer - 2](h))

    def layer(self, layer: int, h: Tensor) -> Tensor:
        """``f_layer(h)``: hidden layer ``layer`` (1-based) applied to the previous activation (no dropout)."""
        return self.act(self.hidden[layer - 1](h))

    def activations(self, x: Tensor) -> list[Tensor]:
        """``[h_0, h_1, ..., h_L]``: the flattened normalised input and every hidden activation (no dropout)."""
        hs = [self.input(x).flatten(1)]
        for index in range(1, len(self.hidden) + 1):
            hs.append(self.layer(index, hs[-1]))
        return hs


@dataclass
class Targets:
    """One batch's activations ``h[0..L]`` (detached), logits and hidden-layer targets ``target[l]`` (``l >= 1``;
    ``target[0]`` is ``None``)."""

    h: list[Tensor]
    logits: Tensor
    target: list[Tensor | None]


def local_forward(model: DTPNetwork, x: Tensor) -> list[Tensor]:
    """``[h_0, ..., h_L]`` where each hidden layer is applied to the *detached* previous activation (after dropout
    in training mode), so ``h_l`` carries a graph into layer ``l``'s own parameters only."""
    hs = [model.input(x).flatten(1).detach()]
    for index in range(1, len(model.hidden) + 1):
        below = hs[-1].detach()
        hs.append(model.layer(index, model.drop(below) if index > 1 else below))
    return hs


def compute_targets(model: DTPNetwork, h: Sequence[Tensor], y: Tensor, target_lr: float) -> Targets:
    """Steps 3-4 from activations ``h = [h_0, ..., h_L]``: the top target by a gradient step of the summed
    cross-entropy, lower targets by difference correction through the current inverses. Returns detached tensors."""
    h = [t.detach() for t in h]
    top = h[-1].clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model.head(model.drop(top))
        (grad_top,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), top)
    targets: list[Tensor | None] = [None] * len(h)
    with torch.no_grad():
        targets[-1] = h[-1] - target_lr * grad_top
        for layer in range(len(h) - 1, 1, -1):
            above = targets[layer]
            assert above is not None
            targets[layer - 1] = h[layer - 1] + model.inverse(layer, above) - model.inverse(layer, h[layer])
    return Targets(h, logits.detach(), targets)


def inverse_loss(model: DTPNetwork, h: Sequence[Tensor], noise: float, collective: Collective = SINGLE) -> Tensor:
    """Step 2: the reconstruction loss of every inverse on noise-corrupted activations (batch mean, summed
    over units and inverses). Only the inverses' parameters receive its gradient. The noise is drawn for the
    global batch of a data-parallel run and sliced (:meth:`~zoo.engine.distributed.Collective.local`)."""
    total = h[0].new_zeros(())
    for layer in range(2, len(h)):
        below = h[layer - 1].detach()
        shape = (below.shape[0] * collective.world, *below.shape[1:])
        draw = collective.local(torch.randn(shape, dtype=below.dtype, device=below.device))
        corrupted = below + noise * draw
        with torch.no_grad():
            up = model.layer(layer, corrupted)
        total = total + (model.inverse(layer, up) - corrupted).pow(2).sum(1).mean()
    return total


def forward_loss(model: DTPNetwork, h: Sequence[Tensor], targets: Targets, y: Tensor) -> Tensor:
    """Step 5: the local losses of every forward layer on activations ``h`` from :func:`local_forward` (hidden:
    squared distance to the target, summed over units, batch mean; output: cross-entropy of its detached input)."""
    total = F.cross_entropy(model.head(model.drop(h[-1].detach())), y)
    for layer in range(1, len(h)):
        target = targets.target[layer]
        assert target is not None
        total = total + (h[layer] - target).pow(2).sum(1).mean()
    return total


class DTPTrainer(Trainer):
    """Difference target propagation (see the module doc). Options: ``optimizer`` (``adam`` | ``sgd``), ``lr``
    (forward weights), ``inverse_lr``, ``target_lr`` (step of the top target), ``noise`` (inverse training
    corruption), ``inverse_steps`` (inverse updates per batch), ``momentum``, ``weight_decay``,
    ``schedule`` (``cosine`` | ``constant``, for both learning rates)."""

    state_attrs = ("forward_optimizer", "inverse_optimizer")
    options = {"optimizer": "adam", "lr": 1e-3, "inverse_lr": 1e-3, "target_lr": 0.1, "noise": 0.1,
               "inverse_steps": 1, "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        if not isinstance(model, DTPNetwork):
            raise TypeError(f"DTPTrainer trains a DTPNetwork, not {type(model).__name__}")
        self.net: DTPNetwork = model
        config = self.config
        name, momentum, decay = config["optimizer"], float(config["momentum"]), float(config["weight_decay"])
        self.lr, self.inverse_lr = float(config["lr"]), float(config["inverse_lr"])
        self.target_lr = float(config["target_lr"])
        self.noise = float(config["noise"])
        self.inverse_steps = int(config["inverse_steps"])
        self.schedule = check_schedule(config["schedule"])
        self.forward_params = [p for n, p in model.named_parameters() if not n.startswith("inverses.")]
        self.inverse_params = list(self.net.inverses.parameters())
        self.forward_optimizer = make_optimizer(self.forward_params, name, self.lr, momentum=momentum,
                                                weight_decay=decay)
        self.inverse_optimizer = make_optimizer(self.inverse_params, name, self.inverse_lr, momentum=momentum)

    def factor(self) -> float:
        """Learning-rate multiplier of the current step (cosine annealing or 1)."""
        return schedule_factor(self.schedule, self.progress())

    def train_inverses(self, h: Sequence[Tensor]) -> float:
        """Step 2 on activations ``h`` (see :func:`local_forward`); returns the inverse loss before the update."""
        for group in self.inverse_optimizer.param_groups:
            group["lr"] = self.inverse_lr * self.factor()
        self.inverse_optimizer.zero_grad(set_to_none=True)
        loss = inverse_loss(self.net, h, self.noise, self.collective)
        loss.backward()
        self.collective.average_(p.grad for p in self.inverse_params)
        self.inverse_optimizer.step()
        return float(loss.detach())

    def forward_gradients(self, x: Tensor, y: Tensor, train_inverses: bool = False) -> tuple[Tensor, Tensor]:
        """Steps 1-5 up to the forward weights' gradients (set in their ``.grad``; the inverses are updated first
        when ``train_inverses``). Returns the total local loss and the batch's cross-entropy."""
        with torch.enable_grad():
            h = local_forward(self.net, x)
            if train_inverses:
                for _ in range(self.inverse_steps):
                    self.train_inverses(h)
            targets = compute_targets(self.net, h, y, self.target_lr)
            self.forward_optimizer.zero_grad(set_to_none=True)
            loss = forward_loss(self.net, h, targets, y)
            loss.backward()
            self.collective.average_(p.grad for p in self.forward_params)
        return loss.detach(), F.cross_entropy(targets.logits, y)

    def step(self, x: Tensor, y: Tensor) -> float:
        for group in self.forward_optimizer.param_groups:
            group["lr"] = self.lr * self.factor()
        _, cross_entropy = self.forward_gradients(x, y, train_inverses=True)
        self.forward_optimizer.step()
        self.step_count += 1
        return float(cross_entropy)


def dtp_rule_update(model: nn.Module, x: Tensor, y: Tensor, target_lr: float = 0.1) -> dict[str, Tensor]:
    """DTP's update direction on a batch: minus the gradient of each layer's local loss (targets from the current
    inverses), for every forward weight. Leaves ``.grad`` untouched."""
    if not isinstance(model, DTPNetwork):
        raise TypeError(f"DTP alignment needs a DTPNetwork, not {type(model).__name__}")
    weights = {n: p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("inverses.")}
    with torch.enable_grad():
        h = local_forward(model, x)
        targets = compute_targets(model, h, y, target_lr)
        grads = torch.autograd.grad(forward_loss(model, h, targets, y), list(weights.values()))
    return {n: -g for n, g in zip(weights, grads)}


def dtp_alignment(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """``Family.alignment`` for DTP: per forward layer, the angle between DTP's local-loss update and backprop's
    update of the cross-entropy (the inverses are not compared)."""
    angles = compare(model, x, y, dtp_rule_update)
    return {n: a for n, a in angles.items() if not n.startswith("inverses.")}


RULES = (
    Rule(name="dtp", learning_rule="difference_target_propagation",
         description="trained with difference target propagation: each layer learns a local target sent down "
                     "through learned inverses with the difference correction (inverses stored in the checkpoint).",
         trainer=DTPTrainer, paper="Lee, Zhang, Fischer & Bengio, Difference target propagation (ECML PKDD 2015)",
         alignment=dtp_alignment,
         variants={"mlp": Variant(
             summary="Two-hidden-layer tanh MLP trained with difference target propagation: layer-local targets sent "
                     "down through learned inverses with the difference correction (inverses stored in the "
                     "checkpoint).",
             build=DTPNetwork, options={**MLP_ARCHITECTURE.options, "activation": "tanh"},
             extends=MLP_ARCHITECTURE.name)}),
)
