"""Deep feedback control (DFC): a feedback controller drives the output of a fully connected network towards a target
through fixed feedback weights; each weight then learns, locally, from the difference between what its neuron does
under control and what its own feedforward input predicts.

Meulemans, Tristany Farinha, García Ordóñez, Vilimelis Aceituno, Sacramento & Grewe, *Credit assignment in neural
networks through deep feedback control* (NeurIPS 2021), arXiv:2106.07887; facts checked against the authors'
repository (meulemansalex/deep_feedback_control: ``networks/tpdi_networks.py``, ``networks/tpdi_layers.py``,
``configs/configs_mnist/mnist_fixed_dfc_ss.py``).

Network (:class:`DFCNetwork`): layers ``i = 1 .. L`` (``hidden``, then the output layer), ``r_0`` the normalised
flattened image, ``v_i = W_i r_{i-1} + b_i`` and ``r_i = phi_i(v_i)`` with ``phi = tanh`` in the hidden layers and the
identity at the output (``r_L`` are the logits, read by a softmax cross-entropy loss ``L``, as in the paper's
classification experiments). Weights are Xavier-normal, biases zero (the authors' MNIST configurations). The
feedback weights ``Q_i`` ``[n_i, n_L]`` are stacked in the persistent buffer ``feedback`` (the paper's
``Q-bar = [Q_1; ...; Q_L]``), initialised once from the initial forward weights as the authors' ``weight_product``
option does, ``Q_i = W_{i+1}^T W_{i+2}^T ... W_L^T`` and ``Q_L = I`` (the transposed Jacobian ``dr_L/dv_i`` of the
network at initialisation with the nonlinearities linearised), and never trained: they are saved in the checkpoint
and stay bit-identical when fine-tuning.

Inference (``model(x)``) is the plain feedforward pass: logits ``r_L^- = v_L^-`` ``[N, num_classes]``, no controller.

Controlled dynamics (:func:`simulate`), in units of the controller's time constant ``tau_u = 1``::

    tau_v dv_i/dt = -v_i + W_i phi(v_{i-1}) + b_i + Q_i u          (phi(v_0) = r_0, the clamped input)
    u = u_int + k_p e,   du_int/dt = e - alpha u_int,   e = r_L^* - r_L
    r_L^* = r_L^- - lambda dL/dr_L |_{r_L^-} = r_L^- - lambda (softmax(r_L^-) - onehot(y))

(``L`` the cross-entropy of each sample, so every sample's target moves by ``lambda`` times its own gradient;
``lambda`` is ``target_strength``.) They start from the feedforward state (``v_i = v_i^-``, ``u_int = 0``) and are
integrated by forward Euler with ``steps`` steps of size ``dt``, as the authors simulate them: each step first updates
the controller from the current error (their "proactive" controller), then the layers bottom-up, each layer reading the
rate its lower layer has just reached (their "instantaneous transmission"). At the steady state
``u_int = e / alpha`` and, linearising the network, ``u = (J Q-bar + alpha / (1 + alpha k_p) I)^{-1} (r_L^* - r_L^-)``
with ``J = dr_L/dv`` (the paper's analytical steady state, DFC-SSA). The paper writes the leak as ``alpha u_int``,
the authors' code as ``alpha u``; the two agree for ``k_p = 0``, and the zoo follows the paper. With ``lambda = 0`` the
target is the feedforward output, the feedforward state is a fixed point, and nothing moves. Forward Euler needs
``tau_v >= dt``, ``dt (mu + alpha) < 2`` and, with ``k_p > 0``, ``dt / tau_v (1 + k_p mu) < 2`` for the eigenvalues
``mu`` of ``J Q-bar`` (real parts 1.8 to 7.6 measured for the recipe's MNIST network, untrained and during its first
epochs); the recipes use ``k_p = 0``, with which 50 steps of ``dt = 0.05`` settle the loop (recipe notes).

Learning rule (:func:`controlled_update`, :class:`DFCTrainer`): the paper's plasticity rule
``tau_W dW_i/dt = (phi(v_i) - phi(W_i r_{i-1} + b_i)) r_{i-1}^T``, the somatic (controlled) rate minus the rate the
basal (feedforward) input of the same layer predicts, both with the controlled rate ``r_{i-1} = phi(v_{i-1})`` of the
layer below (the authors' ``nonlinear_difference`` rule), taken at the end of the simulated dynamics::

    dW_i = < (phi(v_i) - phi(W_i r_{i-1} + b_i)) r_{i-1}^T >,   db_i = < phi(v_i) - phi(W_i r_{i-1} + b_i) >

(``< >`` the batch mean; at the steady state ``v_i - (W_i r_{i-1} + b_i) = Q_i u``). This is the paper's **DFC-SS**
variant (the update from the steady state of the simulated dynamics rather than integrated over them, which would be
DFC, or solved analytically, DFC-SSA) with **fixed feedback weights**, one of the variants of the paper's Table 1 (the
authors' configuration ``configs/configs_mnist/mnist_fixed_dfc_ss.py``). Learning ``Q`` as the paper does, in a separate
noise-driven phase, would add a noisy simulation of its own to every batch and extra feedback-only epochs; the fixed
variant fits the zoo's CPU budget. Each update involves only the two layers a weight connects. The trainer sets
``-dW_i / lambda`` as each parameter's gradient (the authors divide the learning rate by ``lambda``, so the rates do
not depend on it) and applies Adam or SGD with one learning rate per layer (``lrs``). Samples whose dynamics did not
settle are kept (the authors drop them); the recipe's step count settles them (``tests/test_rules_feedback_control``).

For small ``lambda`` the update is ``lambda`` times the linear response of the network to the controller, so
``dW_i / lambda`` approaches a Gauss-Newton-like direction for small ``alpha`` and, for large ``alpha`` with ``Q``
equal to the transposed Jacobian, the gradient; :func:`dfc_alignment` measures its angle with backprop's ``-dL/dW`` of
the same cross-entropy.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zoo.archs.image_input import ImageInput
from zoo.engine.distributed import SINGLE, Collective
from zoo.engine.options import check_schedule, layer_rates, layerwise_optimizer, scale_layer_rates, schedule_factor
from zoo.engine.trainer import Trainer
from zoo.evaluation.alignment import compare
from zoo.rules.base import Rule, Variant

PAPER = ("Meulemans, Tristany Farinha, Garcia Ordonez, Vilimelis Aceituno, Sacramento & Grewe, Credit assignment in "
         "neural networks through deep feedback control (NeurIPS 2021), arXiv:2106.07887")


class DFCNetwork(nn.Module):
    """The fully connected network of deep feedback control (see the module doc): ``layers[i - 1]`` holds ``W_i`` and
    ``b_i`` (``nn.Linear``; tanh hidden layers, linear output) and the buffer ``feedback`` ``[sum n_i, n_L]`` the
    fixed feedback weights ``Q_1 .. Q_L`` stacked, set from the initial forward weights."""

    feedback: Tensor

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float], *,
                 hidden: Sequence[int]) -> None:
        super().__init__()
        if not hidden or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in hidden):
            raise ValueError(f"hidden must list one or more positive int layer widths, got {list(hidden)!r}")
        self.input = ImageInput(in_shape, mean, std)
        shape = self.input.in_shape
        widths = [shape[0] * shape[1] * shape[2], *hidden, num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        for layer in self.linears():
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.register_buffer("feedback", weight_product(self.linears()))

    def linears(self) -> list[nn.Linear]:
        """``layers`` as a typed list: ``[W_1, b_1], ..., [W_L, b_L]``."""
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]

    def feedback_blocks(self) -> list[Tensor]:
        """``[Q_1, ..., Q_L]``: the rows of ``feedback`` that reach each layer, ``Q_i`` ``[n_i, n_L]`` (views)."""
        return list(self.feedback.split([layer.out_features for layer in self.linears()]))

    def clamped_input(self, x: Tensor) -> Tensor:
        """``r_0``: the normalised, flattened images ``[N, inputs]``."""
        return self.input(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]``: the feedforward pass ``r_L^-``, without the controller."""
        return feedforward(self, self.clamped_input(x))[-1]


def weight_product(layers: Sequence[nn.Linear]) -> Tensor:
    """The stacked feedback weights ``[Q_1; ...; Q_L]`` with ``Q_i = W_{i+1}^T ... W_L^T`` and ``Q_L = I``."""
    top = layers[-1].weight
    blocks = [torch.eye(top.shape[0], dtype=top.dtype)]
    for layer in reversed(layers[1:]):
        blocks.insert(0, layer.weight.detach().t() @ blocks[0])
    return torch.cat(blocks).contiguous()


def rate(model: DFCNetwork, index: int, v: Tensor) -> Tensor:
    """``phi_i(v)`` for layer ``i = index + 1``: tanh in the hidden layers, the identity at the output."""
    return v if index == len(model.layers) - 1 else torch.tanh(v)


def feedforward(model: DFCNetwork, r0: Tensor) -> list[Tensor]:
    """The feedforward voltages ``[v_1^-, ..., v_L^-]`` from the clamped input ``r0`` (``v_L^-`` are the logits)."""
    voltages: list[Tensor] = []
    below = r0
    for index, layer in enumerate(model.linears()):
        voltages.append(layer(below))
        below = rate(model, index, voltages[-1])
    return voltages


class Dynamics(NamedTuple):
    """The constants of the controlled dynamics: Euler step ``dt`` and the network's time constant ``tau_v`` (both in
    units of the controller's ``tau_u``), the controller's leak ``alpha`` and proportional gain ``k_p``."""

    dt: float
    tau_v: float
    alpha: float
    k_p: float


def check_dynamics(dt: Any, tau_v: Any, alpha: Any, k_p: Any) -> Dynamics:
    """:class:`Dynamics` from these values if forward Euler can integrate them: ``dt > 0``, ``tau_v >= dt`` (a
    smaller ``tau_v`` overshoots at every step, as the authors note), ``alpha >= 0`` and ``k_p >= 0``."""
    values = {"dt": dt, "tau_v": tau_v, "alpha": alpha, "k_p": k_p}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if dt <= 0 or tau_v < dt or alpha < 0 or k_p < 0:
        raise ValueError(f"the dynamics need dt > 0, tau_v >= dt (forward Euler), alpha >= 0 and k_p >= 0; got "
                         f"dt={dt!r}, tau_v={tau_v!r}, alpha={alpha!r}, k_p={k_p!r}")
    return Dynamics(float(dt), float(tau_v), float(alpha), float(k_p))


class ControlState(NamedTuple):
    """A state of the controlled dynamics: the somatic voltages ``v_1 .. v_L``, the controller's integral part
    ``u_int`` and its output ``u = u_int + k_p e`` (``[N, n_L]``)."""

    v: list[Tensor]
    u_int: Tensor
    u: Tensor


def feedforward_state(model: DFCNetwork, r0: Tensor) -> ControlState:
    """Where the dynamics start: the feedforward voltages and a silent controller."""
    voltages = feedforward(model, r0)
    silent = torch.zeros_like(voltages[-1])
    return ControlState(voltages, silent, silent)


def output_target(logits: Tensor, y: Tensor, target_strength: float) -> Tensor:
    """``r_L^* = r_L^- - lambda (softmax(r_L^-) - onehot(y))``: a gradient step of size ``target_strength`` on each
    sample's cross-entropy, taken at the feedforward output."""
    error = F.softmax(logits, dim=1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)
    return logits - target_strength * error


def simulate(model: DFCNetwork, r0: Tensor, state: ControlState, target: Tensor, dynamics: Dynamics,
             steps: int) -> ControlState:
    """``steps`` forward-Euler steps of the controlled dynamics (module doc) from ``state`` (not modified), with the
    input ``r0`` clamped and the output pulled towards ``target``; returns the new state."""
    layers, blocks = model.linears(), model.feedback_blocks()
    drive = layers[0](r0)  # W_1 r_0 + b_1: the input is clamped
    leak_v = dynamics.dt / dynamics.tau_v
    v, u_int, u = list(state.v), state.u_int, state.u
    for _ in range(steps):
        error = target - v[-1]  # the output rate is its voltage
        u_int = u_int + dynamics.dt * (error - dynamics.alpha * u_int)
        u = u_int + dynamics.k_p * error
        for index, (layer, q) in enumerate(zip(layers, blocks)):
            basal = drive if index == 0 else layer(rate(model, index - 1, v[index - 1]))
            v[index] = v[index] + leak_v * (basal + u @ q.t() - v[index])
    return ControlState(v, u_int, u)


def local_update(model: DFCNetwork, r0: Tensor, voltages: Sequence[Tensor]) -> dict[str, Tensor]:
    """The paper's rule at the somatic voltages ``voltages`` (``v_1 .. v_L``), per parameter name:
    ``dW_i = <(phi(v_i) - phi(W_i r_{i-1} + b_i)) r_{i-1}^T>`` and ``db_i = <phi(v_i) - phi(W_i r_{i-1} + b_i)>``
    with ``r_{i-1} = phi(v_{i-1})`` (``r_0`` the input)."""
    n = r0.shape[0]
    update: dict[str, Tensor] = {}
    below = r0
    for index, (layer, v) in enumerate(zip(model.linears(), voltages)):
        difference = rate(model, index, v) - rate(model, index, layer(below))
        update[f"layers.{index}.weight"] = difference.t() @ below / n
        update[f"layers.{index}.bias"] = difference.mean(0)
        below = rate(model, index, v)
    return update


class Estimate(NamedTuple):
    """DFC's update ``dW`` per parameter name (not yet divided by ``lambda``), the cross-entropy of the feedforward
    pass, and the state the dynamics ended in."""

    update: dict[str, Tensor]
    loss: Tensor
    state: ControlState


def check_steps(steps: Any) -> int:
    """``steps`` if it is an int >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1 (Euler steps of the controlled dynamics), got {steps!r}")
    return steps


def controlled_update(model: DFCNetwork, x: Tensor, y: Tensor, target_strength: float, dynamics: Dynamics,
                      steps: int) -> Estimate:
    """DFC on a batch: the feedforward pass, the output target at strength ``target_strength``, ``steps`` steps of
    the controlled dynamics from the feedforward state, and the local update at their end (module doc). Runs without
    autograd; the model is unchanged. ``target_strength = 0`` gives a zero update."""
    with torch.no_grad():
        r0 = model.clamped_input(x)
        start = feedforward_state(model, r0)
        logits = start.v[-1]
        target = output_target(logits, y, target_strength)
        end = simulate(model, r0, start, target, dynamics, check_steps(steps))
        return Estimate(local_update(model, r0, end.v), F.cross_entropy(logits, y), end)


def check_target_strength(value: Any) -> float:
    """``target_strength`` (``lambda``) if the trainer can use it: a number ``> 0`` (the update is divided by it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < value < math.inf):
        raise ValueError(f"target_strength must be a number > 0 (lambda; the update is divided by it), got {value!r}")
    return float(value)


class DFCTrainer(Trainer):
    """Deep feedback control, DFC-SS with fixed feedback (see the module doc). Options: ``target_strength``
    (``lambda > 0``), ``steps`` (Euler steps of the controlled dynamics), ``dt``, ``tau_v`` (``>= dt``), ``alpha``
    (controller leak), ``k_p`` (proportional gain), ``lrs`` (one learning rate per weight layer, bottom first),
    ``optimizer`` (``adam`` | ``sgd``), ``momentum`` (SGD), ``weight_decay``, ``schedule`` (one of
    :data:`zoo.engine.options.SCHEDULES`, for every layer's rate). The loss reported per step is the cross-entropy of
    the feedforward pass."""

    state_attrs = ("optimizer",)
    options = {"target_strength": 0.1, "steps": 50, "dt": 0.05, "tau_v": 0.1, "alpha": 0.01, "k_p": 0.0,
               "lrs": [1e-3, 1e-3, 1e-3, 1e-3], "optimizer": "adam", "momentum": 0.9, "weight_decay": 0.0,
               "schedule": "cosine"}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        if not isinstance(model, DFCNetwork):
            raise TypeError(f"DFCTrainer trains a DFCNetwork, not {type(model).__name__}")
        self.net: DFCNetwork = model
        config = self.config
        self.target_strength = check_target_strength(config["target_strength"])
        self.steps = check_steps(config["steps"])
        self.dynamics = check_dynamics(config["dt"], config["tau_v"], config["alpha"], config["k_p"])
        layers = self.net.linears()
        self.lrs = layer_rates(config["lrs"], layers, "DFCTrainer")
        self.schedule = check_schedule(config["schedule"])
        self.optimizer = layerwise_optimizer(layers, self.lrs, config)

    def step(self, x: Tensor, y: Tensor) -> float:
        scale_layer_rates(self.optimizer, self.lrs, schedule_factor(self.schedule, self.progress()))
        estimate = controlled_update(self.net, x, y, self.target_strength, self.dynamics, self.steps)
        for name, p in self.net.named_parameters():
            p.grad = -estimate.update[name] / self.target_strength
        self.collective.average_(p.grad for p in self.net.parameters())
        self.optimizer.step()
        self.step_count += 1
        return float(estimate.loss)


def dfc_rule_update(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """DFC's update direction on a batch, ``dW / lambda`` per parameter, with the trainer's default options."""
    if not isinstance(model, DFCNetwork):
        raise TypeError(f"DFC alignment needs a DFCNetwork, not {type(model).__name__}")
    options = DFCTrainer.options
    strength = check_target_strength(options["target_strength"])
    dynamics = check_dynamics(options["dt"], options["tau_v"], options["alpha"], options["k_p"])
    update = controlled_update(model, x, y, strength, dynamics, options["steps"]).update
    return {name: d / strength for name, d in update.items()}


def dfc_alignment(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """``Family.alignment`` for DFC: per weight matrix, the angle between DFC's update (the trainer's default
    options) and backprop's ``-dL/dW`` of the same cross-entropy."""
    return compare(model, x, y, dfc_rule_update)


RULES = (
    Rule(name="dfc", learning_rule="deep_feedback_control",
         description="trained with deep feedback control: a feedback controller drives the output towards a target "
                     "through fixed feedback weights (stored in the checkpoint); each weight learns locally from "
                     "the difference between its neuron's controlled rate and the rate its feedforward input "
                     "predicts.",
         trainer=DFCTrainer, paper=PAPER, alignment=dfc_alignment,
         variants={"mlp": Variant(
             summary="Fully connected tanh net trained with deep feedback control (DFC-SS with fixed feedback "
                     "weights, stored in the checkpoint): a PI controller drives the output towards a target one "
                     "small gradient step away, Euler-simulated for a fixed number of steps; each weight learns "
                     "from its neuron's controlled minus feedforward-predicted rate. Inference is the plain "
                     "feedforward pass.",
             build=DFCNetwork, options={"hidden": [256, 256, 256]})}),
)
