"""Equilibrium propagation (EP): a layered Hopfield-like network relaxes to a minimum of its energy with the input
clamped (free phase), then again with the output weakly pulled towards the target (nudged phases); each weight
learns from the difference of the local pre/post activity products between the phases.

Scellier & Bengio, *Equilibrium propagation: bridging the gap between energy-based models and backpropagation*
(Frontiers in Computational Neuroscience 2017); symmetric nudging from Laborieux, Ernoult, Scellier, Bengio,
Grollier & Querlioz, *Scaling equilibrium propagation to deep ConvNets by drastically reducing its gradient
estimator bias* (Frontiers in Neuroscience 2021).

Network (:class:`EPNetwork`): states ``s_1 .. s_L`` in ``[0, 1]`` (hidden layers, then the output layer), the
flattened image ``s_0 = x`` clamped (raw pixels or standardised: ``input_norm``), weights ``W_l``
``[n_l, n_{l-1}]`` used in both directions (symmetric: ``W_l`` up, ``W_l^T`` down), biases ``b_l``. The energy and
the nudged energy are

    E(s) = sum_l 1/2 ||s_l||^2 - sum_l s_l^T (W_l s_{l-1} + b_l),   s_l in [0, 1]^{n_l}
    F(s) = E(s) + beta * C(s),   C = 1/2 ||s_L - y||^2   (y the one-hot target)

Relaxation (:func:`relax`): ``E`` is a separable quadratic in each layer given its neighbours, so its minimiser over
one layer is the hard sigmoid ``rho(a) = clip(a, 0, 1)`` of the layer's net input
``a_l = W_l s_{l-1} + b_l + W_{l+1}^T s_{l+1}``; for the output layer under nudging it is
``rho((a_L + beta y) / (1 + beta))``. One step updates the odd layers, then the even layers, from the newest
states (odd layers only touch even ones, so each half-step is an exact block minimisation): ``F`` never increases,
and the states settle to a fixed point. (Laborieux et al. update all layers at once with the same maps; that
synchronous iteration may oscillate between two states.) Every phase is a fixed number of such steps from the
states given: the free phase ``T1 = free_steps`` from zero, each nudged phase ``T2 = nudged_steps`` from the free
fixed point ``s^0``.

Inference (``model(x)``): the free phase with ``T1`` steps, no label. The model returns the output layer's net input
at the free fixed point, ``a_L = W_L s_{L-1} + b_L``, as logits: the output state is ``s_L = rho(a_L)``, so the two
rank the classes alike wherever ``s_L`` is not clipped, and ``a_L`` still ranks those clipped at 0 or 1 (several
outputs at 1 would otherwise tie). Returning ``s_L`` itself would give a zero input gradient wherever the output
saturates, which would mask gradient attacks. The relaxation is a plain unrolled computation: under
``torch.enable_grad()`` autograd differentiates through the ``T1`` steps (input gradients for attacks, and the
BPTT reference of the alignment angles).

Learning rule (:func:`ep_update`, :class:`EPTrainer`): with the nudged fixed points ``s^{+beta}`` and
``s^{-beta}`` (symmetric nudging, Laborieux et al. 2021), the estimate of ``-dC/dtheta`` at the free fixed point is

    dW_l = 1/(2 beta) < rho(s_l^{+beta}) rho(s_{l-1}^{+beta})^T - rho(s_l^{-beta}) rho(s_{l-1}^{-beta})^T >
    db_l = 1/(2 beta) < rho(s_l^{+beta}) - rho(s_l^{-beta}) >

(``< >`` the batch mean; the states are in ``[0, 1]``, so ``rho(s) = s``; ``s_0 = x`` in both phases). With
``symmetric=False`` it is Scellier & Bengio's one-sided estimate ``1/beta (products at s^{+beta} - products at s^0)``.
Each product involves only the two layers a weight connects (:func:`phase_contrast`). The estimate is set as
``-grad`` of every parameter and applied by SGD or Adam with one learning rate per layer (``lrs``), as in Laborieux
et al.'s code. As ``beta -> 0`` (and with converged phases) it tends to the gradient of ``C`` at the free fixed
point; symmetric nudging removes the first-order bias in ``beta``. The alignment angle (:func:`ep_alignment`)
compares it with the gradient of the same loss computed by backprop through the unrolled free phase.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zoo.archs.image_input import ImageInput
from zoo.engine.distributed import SINGLE, Collective
from zoo.engine.options import check_schedule, layer_rates, layerwise_optimizer, scale_layer_rates, schedule_factor
from zoo.engine.trainer import Trainer
from zoo.evaluation.alignment import angle_degrees
from zoo.rules.base import Rule, Variant

SCELLIER = ("Scellier & Bengio, Equilibrium propagation: bridging the gap between energy-based models and "
            "backpropagation (Frontiers in Computational Neuroscience 2017)")
LABORIEUX = ("Laborieux, Ernoult, Scellier, Bengio, Grollier & Querlioz, Scaling equilibrium propagation to deep "
             "ConvNets by drastically reducing its gradient estimator bias (Frontiers in Neuroscience 2021)")

States = list[Tensor]
INPUT_NORMS = ("raw", "standard")


def hard_sigmoid(a: Tensor) -> Tensor:
    """``rho(a) = clip(a, 0, 1)``: the minimiser of ``1/2 s^2 - a s`` over ``s`` in ``[0, 1]``."""
    return a.clamp(0.0, 1.0)


class EPNetwork(nn.Module):
    """The layered energy-based network of equilibrium propagation (see the module doc).

    ``layers[l - 1]`` holds ``W_l`` and ``b_l`` (``nn.Linear``), for ``hidden`` layers and the output layer;
    ``free_steps`` is ``T1``, the number of relaxation steps of the free phase and so of inference. ``input_norm``:
    ``"raw"`` clamps the pixels in ``[0, 1]`` as they are (Laborieux et al.'s MNIST input), ``"standard"`` the
    per-channel standardised image (the zoo's usual input).
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float], *,
                 hidden: Sequence[int], free_steps: int, input_norm: str) -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"unknown input_norm {input_norm!r}; accepted: {INPUT_NORMS}")
        if isinstance(free_steps, bool) or not isinstance(free_steps, int) or free_steps < 1:
            raise ValueError(f"free_steps must be an int >= 1 (relaxation steps of the free phase), got {free_steps!r}")
        if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in hidden):
            raise ValueError(f"hidden must list positive int layer widths, got {list(hidden)!r}")
        channels = int(in_shape[0])
        raw = input_norm == "raw"  # ImageInput with mean 0 / std 1 checks the contract and leaves [0, 1] as it is
        self.input = ImageInput(in_shape, [0.0] * channels if raw else mean, [1.0] * channels if raw else std)
        self.input_norm = input_norm
        shape = self.input.in_shape
        widths = [shape[0] * shape[1] * shape[2], *hidden, num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.free_steps = free_steps

    def linears(self) -> list[nn.Linear]:
        """``layers`` as a typed list: ``[W_1, b_1], ..., [W_L, b_L]``."""
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]

    def clamped_input(self, x: Tensor) -> Tensor:
        """``s_0``: the normalised, flattened images ``[N, inputs]``."""
        return self.input(x).flatten(1)

    def free_phase(self, x: Tensor) -> tuple[Tensor, Tensor, States]:
        """The clamped input ``s_0``, its drive ``W_1 s_0 + b_1`` and the states after ``free_steps`` steps from
        zero, not nudged."""
        s0 = self.clamped_input(x)
        drive = self.linears()[0](s0)
        return s0, drive, relax(self, drive, zero_states(self, drive), self.free_steps)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]``: the output layer's net input ``W_L s_{L-1} + b_L`` at the end of the free
        phase (``T1`` steps; the output state is its hard sigmoid)."""
        _, drive, states = self.free_phase(x)
        if len(states) == 1:
            return drive
        top = self.linears()[-1]
        return F.linear(states[-2], top.weight, top.bias)

    def extra_repr(self) -> str:
        return f"free_steps={self.free_steps}, input_norm={self.input_norm!r}"


def zero_states(model: EPNetwork, drive: Tensor) -> States:
    """All-zero states ``s_1 .. s_L`` for a batch (``drive``: its input drive ``[N, n_1]``)."""
    return [drive.new_zeros(drive.shape[0], layer.out_features) for layer in model.linears()]


def net_input(model: EPNetwork, drive: Tensor, states: States, index: int) -> Tensor:
    """``a_l = W_l s_{l-1} + b_l + W_{l+1}^T s_{l+1}`` for layer ``l = index + 1`` (0-based ``index`` into
    ``states``); the input drive ``W_1 s_0 + b_1`` is computed once per batch and passed as ``drive``."""
    layers = model.linears()
    if index == 0:
        a = drive
    else:
        a = F.linear(states[index - 1], layers[index].weight, layers[index].bias)
    if index + 1 < len(states):
        a = a + states[index + 1] @ layers[index + 1].weight
    return a


def relax(model: EPNetwork, drive: Tensor, states: States, steps: int, target: Tensor | None = None,
          beta: float = 0.0) -> States:
    """``steps`` relaxation steps from ``states`` (not modified) with the input clamped (its drive
    ``W_1 s_0 + b_1``); returns the new states.

    Each step minimises the energy exactly over the odd layers, then over the even layers (``F`` with the nudging
    ``beta * 1/2 ||s_L - target||^2`` on the output when ``beta != 0``; ``target`` is the one-hot target).
    """
    if beta != 0.0 and target is None:
        raise ValueError("a nudged phase (beta != 0) needs the one-hot target")
    if beta <= -1.0:
        raise ValueError(f"beta must be > -1 (the nudged energy must stay convex in the output), got {beta}")
    states = list(states)
    last = len(states) - 1
    for _ in range(steps):
        for parity in (0, 1):
            for index in range(parity, len(states), 2):
                a = net_input(model, drive, states, index)
                if index == last and beta != 0.0:
                    assert target is not None
                    a = (a + beta * target) / (1.0 + beta)
                states[index] = hard_sigmoid(a)
    return states


def energy(model: EPNetwork, s0: Tensor, states: States, target: Tensor | None = None,
           beta: float = 0.0) -> Tensor:
    """Per sample ``[N]``, the energy ``E(s)`` of states in ``[0, 1]`` (``F = E + beta C`` with a target)."""
    total = s0.new_zeros(s0.shape[0])
    for layer, below, s in zip(model.linears(), [s0, *states[:-1]], states):
        total = total + 0.5 * s.pow(2).sum(1) - (F.linear(below, layer.weight, layer.bias) * s).sum(1)
    if target is not None and beta != 0.0:
        total = total + beta * 0.5 * (states[-1] - target).pow(2).sum(1)
    return total


def one_hot(model: EPNetwork, y: Tensor) -> Tensor:
    """The one-hot targets ``[N, num_classes]`` of labels ``y``, in the model's dtype."""
    top = model.linears()[-1]
    return F.one_hot(y, top.out_features).to(top.weight.dtype)


def output_cost(states: States, target: Tensor) -> Tensor:
    """``C = 1/2 ||s_L - y||^2``, averaged over the batch."""
    return 0.5 * (states[-1] - target).pow(2).sum(1).mean()


def phase_contrast(s0: Tensor, first: States, second: States) -> dict[str, Tensor]:
    """Per parameter, the batch mean of the local products at ``first`` minus those at ``second`` (``s0``: the
    clamped input, the same in both): ``<s_l s_{l-1}^T>`` for ``layers.{l-1}.weight`` and ``<s_l>`` for
    ``layers.{l-1}.bias``."""
    n = s0.shape[0]
    out = {"layers.0.weight": (first[0] - second[0]).t() @ s0 / n, "layers.0.bias": (first[0] - second[0]).mean(0)}
    for index in range(1, len(first)):
        products = first[index].t() @ first[index - 1] - second[index].t() @ second[index - 1]
        out[f"layers.{index}.weight"] = products / n
        out[f"layers.{index}.bias"] = (first[index] - second[index]).mean(0)
    return out


def check_beta(beta: float, symmetric: bool) -> float:
    """``beta`` if the rule can use it: ``> 0`` (the update divides by it), and ``< 1`` with symmetric nudging
    (``-beta`` must keep the nudged energy convex in the output)."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (0.0 < beta < (1.0 if symmetric else
                                                                                          float("inf"))):
        accepted = "0 < beta < 1 (symmetric nudging)" if symmetric else "beta > 0"
        raise ValueError(f"beta must be a number with {accepted}; the update divides the phase contrast by beta, "
                         f"got {beta!r}")
    return float(beta)


class Estimate(NamedTuple):
    """EP's estimate ``update`` of ``-dC/dtheta`` per parameter name, and the cost ``C`` after the free phase."""

    update: dict[str, Tensor]
    cost: Tensor


def ep_update(model: EPNetwork, x: Tensor, y: Tensor, beta: float, nudged_steps: int,
              symmetric: bool = True) -> Estimate:
    """EP on a batch: the free phase (``T1`` steps from zero), the nudged phases (``nudged_steps`` steps from the
    free states, with ``+beta`` and ``-beta``, or ``+beta`` alone), and their contrast divided by ``2 beta``
    (symmetric) or ``beta`` (one-sided: against the free states). Runs without autograd; the model is unchanged."""
    beta = check_beta(beta, symmetric)
    with torch.no_grad():
        s0, drive, free = model.free_phase(x)
        target = one_hot(model, y)
        first = relax(model, drive, free, nudged_steps, target, beta)
        second = relax(model, drive, free, nudged_steps, target, -beta) if symmetric else free
        scale = 1.0 / (2.0 * beta if symmetric else beta)
        contrast = phase_contrast(s0, first, second)
        return Estimate({name: scale * d for name, d in contrast.items()}, output_cost(free, target))


def bptt_update(model: EPNetwork, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """``-dC/dtheta`` of the cost at the end of the free phase, by backprop through its ``T1`` unrolled steps."""
    params = dict(model.named_parameters())
    with torch.enable_grad():
        _, _, states = model.free_phase(x)
        grads = torch.autograd.grad(output_cost(states, one_hot(model, y)), list(params.values()))
    return {name: -g for name, g in zip(params, grads)}


class EPTrainer(Trainer):
    """Equilibrium propagation (see the module doc). Options: ``beta`` (nudging strength: ``0 < beta < 1``
    symmetric, ``beta > 0`` one-sided), ``nudged_steps`` (``T2``), ``symmetric`` (nudge with ``+beta`` and
    ``-beta``, else ``+beta`` against the free phase), ``lrs`` (one learning rate per weight layer, bottom first),
    ``optimizer`` (``sgd`` | ``adam``), ``momentum`` (SGD), ``weight_decay``, ``schedule`` (one of
    :data:`zoo.engine.options.SCHEDULES`, for every layer's rate). The free phase takes the model's
    ``free_steps``. The loss reported per step is ``C`` at the end of the free phase."""

    state_attrs = ("optimizer",)
    options = {"beta": 0.2, "nudged_steps": 10, "symmetric": True, "lrs": [2e-4, 1e-4], "optimizer": "adam",
               "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        if not isinstance(model, EPNetwork):
            raise TypeError(f"EPTrainer trains an EPNetwork, not {type(model).__name__}")
        self.net: EPNetwork = model
        config = self.config
        if not isinstance(config["symmetric"], bool):
            raise ValueError(f"EPTrainer: symmetric must be true or false, got {config['symmetric']!r}")
        self.symmetric = config["symmetric"]
        self.beta = check_beta(config["beta"], self.symmetric)
        self.nudged_steps = config["nudged_steps"]
        if isinstance(self.nudged_steps, bool) or not isinstance(self.nudged_steps, int) or self.nudged_steps < 1:
            raise ValueError(f"EPTrainer: nudged_steps must be an int >= 1, got {self.nudged_steps!r}")
        layers = self.net.linears()
        self.lrs = layer_rates(config["lrs"], layers, "EPTrainer")
        self.schedule = check_schedule(config["schedule"])
        self.optimizer = layerwise_optimizer(layers, self.lrs, config)

    def step(self, x: Tensor, y: Tensor) -> float:
        scale_layer_rates(self.optimizer, self.lrs, schedule_factor(self.schedule, self.progress()))
        estimate = ep_update(self.net, x, y, self.beta, self.nudged_steps, self.symmetric)
        for name, p in self.net.named_parameters():
            p.grad = -estimate.update[name]
        self.collective.average_(p.grad for p in self.net.parameters())
        self.optimizer.step()
        self.step_count += 1
        return float(estimate.cost)


def ep_alignment(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """``Family.alignment`` for EP: per weight matrix, the angle between EP's update (the trainer's default
    ``beta``, ``nudged_steps`` and symmetric nudging) and ``-dC/dW`` by backprop through the unrolled free phase.

    Both concern the loss EP descends, ``C = 1/2 ||s_L - y||^2`` at the end of the free phase, so the angle
    measures the bias of EP's estimator (finite ``beta``, finite ``T2``, a free phase not exactly at its fixed
    point), not a difference of objectives; the cross-entropy of the logits is not what EP minimises.
    """
    if not isinstance(model, EPNetwork):
        raise TypeError(f"EP alignment needs an EPNetwork, not {type(model).__name__}")
    options = EPTrainer.options
    rule = ep_update(model, x, y, options["beta"], options["nudged_steps"], options["symmetric"]).update
    exact = bptt_update(model, x, y)
    return {name: round(angle_degrees(rule[name], exact[name]), 4) for name in exact if exact[name].dim() >= 2}


RULES = (
    Rule(name="ep", learning_rule="equilibrium_propagation",
         description="trained with equilibrium propagation: a free and two weakly nudged (+beta, -beta) relaxations "
                     "of the same energy-based dynamics; each weight learns from the difference of its local "
                     "pre/post activity products between the nudged phases.",
         trainer=EPTrainer, paper=f"{SCELLIER}; {LABORIEUX}", alignment=ep_alignment,
         variants={"mlp": Variant(
             summary="Layered Hopfield-like network with hard-sigmoid units and symmetric weights, trained with "
                     "equilibrium propagation (free phase, then symmetric nudging of the output towards the "
                     "target; local contrastive Hebbian updates); inference is the free-phase relaxation with a "
                     "fixed number of steps.",
             build=EPNetwork, options={"hidden": [500], "free_steps": 30, "input_norm": "standard"})}),
)
