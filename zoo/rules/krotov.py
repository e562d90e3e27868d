"""Krotov & Hopfield's unsupervised "competing hidden units" rule, the BioCell head, and three families.

Krotov & Hopfield, *Unsupervised learning by competing hidden units*, PNAS 116(16) 7723-7731 (2019).

The rule (one minibatch of normalised inputs ``v``, hidden weights ``W`` ``[hidden, inputs]``):

* input currents ``I = (sign(W) * |W| ** (p - 1)) v``;
* per sample, the unit with the strongest current gets ``g = +1`` (Hebbian), the ``k``-th strongest gets
  ``g = -delta`` (anti-Hebbian), every other unit ``g = 0``;
* ``dW = g v^T - (sum_samples g * I) * W``, divided by its largest magnitude ``max |dW|``;
* ``W += eps * dW / max|dW|`` with ``eps`` annealed linearly from ``hebbian_lr`` to 0 over the Hebbian phase
  (per step; the reference code anneals per epoch).

Its fixed point has every row's p-norm ``sum |W_i| ** p`` equal to 1. ``g`` has two non-zeros per sample, so
the update touches at most ``2 * batch`` rows: :func:`krotov_update` computes it on those rows only (``topk``
instead of a full sort, ``index_add_`` instead of the dense ``g v^T`` product, a cached ``sign(W)|W|^(p-1)``
refreshed on the touched rows), in float32.

Families (all share :class:`zoo.archs.hebbian.HebbianNet`; the Hebbian layer never receives gradients):

* ``krotov_mlp``: the paper's BioCell head ``c = tanh(beta * S relu(W v) ** n)`` trained on
  ``sum |c - t| ** m`` (``t = +-1``);
* ``krotov_fc``: a linear read-out of ``relu(W v) ** n`` trained with cross-entropy;
* ``krotov_fa``: a two-layer feedback-alignment head (``zoo.rules.feedback_alignment.FeedbackLinear``).

Hyperparameters (MNIST, 2000 units; measured with short runs, see the recipes): the paper's p = 3, k = 7,
delta = 0.4, n = 4.5, m = 6. Two changes make the unsupervised phase converge in tens of epochs instead of
hundreds: ``hebbian_lr`` 0.1 (paper 0.02) and ``init_std`` 0.5 (paper 1.0). Every unit starts with a large
random current, wins, and shrinks towards the fixed point in turn; with N(0, 1) weights this takes hundreds of
epochs (p-norms were still ~120 after 10 epochs' worth of updates at eps 0.04). Much smaller starting weights
(``init_std`` <= 0.3) leave units that never win and stay random. With ``input_norm="l2"``, BioCell's ``beta = 1``
keeps ``tanh`` unsaturated at start (``beta`` 3 saturates and fails). Fashion-MNIST needs ``delta = 0.1``: on its
dense, overlapping images each anti-Hebbian push towards ``-v`` leaves the k-th unit anti-aligned with nearly every
image, so with ``delta = 0.4`` all but ~k units end up silent (the same happens with standardised inputs); its
denser prototypes also give ~13x larger features than MNIST's, hence BioCell's ``beta = 0.1`` there.

Training is two-phase inside one :class:`KrotovTrainer` (see :class:`HebbianPhaseTrainer`): the recipe's
``fit.epochs`` is the total; the first ``rule.hebbian_epochs`` run the unsupervised rule, the rest train the head.
Starting from a published checkpoint (``training.train ... --init ID``) continues the unsupervised training
from its weights.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from zoo.alignment import gradient_alignment
from zoo.archs.hebbian import BioCellHead, HebbianNet, linear_head, mlp_head
from zoo.distributed import SINGLE, Collective
from zoo.registry import Family, register
from zoo.trainer import GradientTrainer, Trainer

PAPER = ("Krotov & Hopfield, Unsupervised learning by competing hidden units (PNAS 2019), "
         "doi:10.1073/pnas.1820458116")


# ----------------------------------------------------------------------------------------------- the local rule

def signed_power(w: Tensor, exponent: float) -> Tensor:
    """``sign(w) * |w| ** exponent`` (cheap special cases for the exponents 1 and 2)."""
    if exponent == 1.0:
        return w
    if exponent == 2.0:
        return w * w.abs()
    return w.sign() * w.abs().pow(exponent)


def competition(currents: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per sample (rows of ``currents`` ``[B, hidden]``), the index of the strongest unit and of the k-th strongest."""
    if not 2 <= k <= currents.shape[1]:
        raise ValueError(f"k must be in [2, hidden={currents.shape[1]}], got {k}")
    top = torch.topk(currents, k, dim=1, sorted=True).indices
    return top[:, 0], top[:, k - 1]


def annealed_lr(lr0: float, step: int, total_steps: int) -> float:
    """Linear annealing ``lr0 * (1 - step / total_steps)``, clamped at 0."""
    return lr0 * max(0.0, 1.0 - step / max(1, total_steps))


def krotov_update(weight: Tensor, v: Tensor, lr: float, *, p: float = 3.0, k: int = 7, delta: float = 0.4,
                  wp: Tensor | None = None, precision: float = 1e-30,
                  collective: Collective = SINGLE) -> dict[str, float]:
    """One in-place Krotov-Hopfield update of ``weight`` ``[hidden, inputs]`` on a batch ``v`` ``[B, inputs]``.

    ``wp`` is a cache of ``signed_power(weight, p - 1)`` (kept in step on the touched rows); without it, it
    is computed. Returns ``{"max_update": max|dW|, "norm_deviation": mean |sum |W_i|^p - 1| of the updated rows,
    "rows": number of updated rows}``. In a data-parallel run (``collective``), ``v`` is this process's shard:
    the processes sum their (dense) ``dW`` before it is normalised and applied, which is the update of the whole
    global batch.
    """
    with torch.no_grad():
        if wp is None:
            wp = signed_power(weight, p - 1.0)
        batch = v.shape[0]
        currents = v @ wp.t()                                              # [B, hidden]
        winners, kth = competition(currents, k)
        rows_all = torch.cat([winners, kth])
        samples = torch.arange(batch, device=v.device)
        coef_current = torch.cat([currents[samples, winners], -delta * currents[samples, kth]])
        if collective.distributed:                                       # every row may be touched by some shard
            rows_all = torch.cat([rows_all, torch.arange(weight.shape[0], device=v.device)])
            coef_current = torch.cat([coef_current, coef_current.new_zeros(weight.shape[0])])
        rows, local = torch.unique(rows_all, return_inverse=True)          # touched rows, sorted
        ds = torch.zeros(len(rows), v.shape[1], dtype=weight.dtype, device=weight.device)
        ds.index_add_(0, local[:batch], v)                                 # g v^T, g = +1 for the winners
        ds.index_add_(0, local[batch:2 * batch], v, alpha=-delta)                  # g = -delta for the k-th units
        xx = torch.zeros(len(rows), dtype=weight.dtype, device=weight.device).index_add_(0, local, coef_current)
        w_rows = weight[rows]
        ds.sub_(xx.unsqueeze(1) * w_rows)
        collective.sum_(ds)
        nc = max(float(ds.abs().max()), precision)
        w_rows.add_(ds, alpha=lr / nc)
        weight[rows] = w_rows
        wp_rows = signed_power(w_rows, p - 1.0)
        if wp.data_ptr() != weight.data_ptr():                           # p = 2: wp is weight itself
            wp[rows] = wp_rows
        norms = (w_rows * wp_rows).sum(1)                                  # sum |W_i|^p of the touched rows
        return {"max_update": nc, "norm_deviation": float((norms - 1.0).abs().mean()), "rows": float(len(rows))}


# --------------------------------------------------------------------------------------------------- BioCell

def biocell_loss(outputs: Tensor, labels: Tensor, m: float = 6.0) -> Tensor:
    """``mean over the batch of sum_classes |c - t| ** m`` with targets ``t = +1`` (true class) / ``-1``."""
    targets = torch.full_like(outputs, -1.0)
    targets.scatter_(1, labels.view(-1, 1), 1.0)
    return (outputs - targets).abs().pow(m).sum(1).mean()


class BioCellTrainer(GradientTrainer):
    """Gradient descent on the BioCell loss (config ``m``, the loss power) instead of cross-entropy."""

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return biocell_loss(logits, y, float(self.config.get("m", 6.0)))


# -------------------------------------------------------------------------------------------- phased trainer

class HebbianPhaseTrainer(Trainer):
    """A local rule for the Hebbian layer, then (or while) gradients train the head.

    Epochs ``[0, hebbian_epochs)`` run :meth:`hebbian_step` (the local rule) on every batch; the head is
    trained with gradients in the remaining epochs, and also during the Hebbian epochs when
    ``head_during_hebbian`` is true. If ``fit.epochs <= hebbian_epochs`` the whole run is unsupervised.

    Config (flat, in the recipe's ``fit.rule``): ``hebbian_epochs``, ``hebbian_lr`` (annealed linearly to 0
    over the Hebbian steps), the rule's own keys, and the head's ``head_optimizer`` (adam | sgd), ``head_lr``,
    ``head_schedule`` (cosine | constant, over the head's epochs), ``head_weight_decay``, ``head_momentum``.
    Unknown keys are rejected.
    """

    head_trainer_class: type[GradientTrainer] = GradientTrainer
    defaults: Mapping[str, Any] = {}
    head_during_hebbian_default = False
    state_attrs = ("head_trainer", "hebbian_step_count")
    COMMON = {"hebbian_epochs": 1, "hebbian_lr": 0.02, "head_during_hebbian": None, "head_optimizer": "adam",
              "head_lr": 1e-3, "head_schedule": "cosine", "head_weight_decay": 0.0, "head_momentum": 0.9}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        known = {**self.COMMON, **self.defaults}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown rule option(s) {unknown}; accepted: {sorted(known)}")
        merged = {**known, **dict(config)}
        if merged["head_during_hebbian"] is None:
            merged["head_during_hebbian"] = self.head_during_hebbian_default
        super().__init__(model, merged, steps_per_epoch, epochs, collective=collective)
        if not isinstance(model, HebbianNet):
            raise TypeError(f"{type(self).__name__} trains HebbianNet models, not {type(model).__name__}")
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

    def head_config_extra(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Extra keys passed to the head's gradient trainer (e.g. BioCell's loss power)."""
        return {}

    def hebbian_lr(self) -> float:
        """The local rule's learning rate at the current Hebbian step (linear annealing to 0)."""
        return annealed_lr(self.hebbian_lr0, self.hebbian_step_count, self.hebbian_total_steps)

    def in_hebbian_phase(self) -> bool:
        return self.epoch() < self.hebbian_epochs

    def hebbian_step(self, x: Tensor) -> float:  # pragma: no cover - abstract
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


class KrotovTrainer(HebbianPhaseTrainer):
    """Krotov-Hopfield unsupervised epochs, then the head (config ``p``, ``k``, ``delta`` and the common keys).

    The value returned for a Hebbian step is the mean ``|sum |W_i|^p - 1|`` of the updated rows (it falls
    to 0 as the rule converges); for a head step, the head's loss.
    """

    defaults = {"p": 3.0, "k": 7, "delta": 0.4}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        self.p = float(self.config["p"])
        self.k = int(self.config["k"])
        self.delta = float(self.config["delta"])
        self._wp: Tensor | None = None
        self._wp_epoch = -1

    def hebbian_step(self, x: Tensor) -> float:
        weight = self.net.hebbian.weight
        if self._wp is None or self._wp_epoch != self.epoch():   # refreshed once per epoch, exact between
            self._wp = signed_power(weight.data, self.p - 1.0)
            self._wp_epoch = self.epoch()
        v = self.net.hebbian_input(x)
        stats = krotov_update(weight.data, v, self.hebbian_lr(), p=self.p, k=self.k, delta=self.delta, wp=self._wp,
                              collective=self.collective)
        return stats["norm_deviation"]


class KrotovBioCellTrainer(KrotovTrainer):
    """:class:`KrotovTrainer` whose head minimises the BioCell loss (config ``m``)."""

    head_trainer_class = BioCellTrainer
    defaults = {**KrotovTrainer.defaults, "m": 6.0}

    def head_config_extra(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"m": float(config["m"])}


# ------------------------------------------------------------------------------------------------- families

def build_krotov_mlp(in_shape: tuple[int, int, int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                     hidden: int, power: float, beta: float, input_norm: str, init_std: float) -> nn.Module:
    """Krotov-Hopfield layer + BioCell head ``tanh(beta * S relu(W v) ** power)``."""
    return HebbianNet(in_shape, num_classes, mean, std, hidden=hidden, power=power, input_norm=input_norm,
                      init_std=init_std, head=lambda i, o: BioCellHead(i, o, beta))


def build_krotov_fc(in_shape: tuple[int, int, int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                    hidden: int, power: float, input_norm: str, init_std: float) -> nn.Module:
    """Krotov-Hopfield layer + linear read-out (cross-entropy)."""
    return HebbianNet(in_shape, num_classes, mean, std, hidden=hidden, power=power, input_norm=input_norm,
                      init_std=init_std, head=linear_head)


def build_krotov_fa(in_shape: tuple[int, int, int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                    hidden: int, power: float, input_norm: str, init_std: float, head_hidden: int) -> nn.Module:
    """Krotov-Hopfield layer + two-layer feedback-alignment head (cross-entropy)."""
    from zoo.rules.feedback_alignment import FeedbackLinear

    def fa_linear(a: int, b: int) -> nn.Module:
        return FeedbackLinear(a, b, mode="fa")

    return HebbianNet(in_shape, num_classes, mean, std, hidden=hidden, power=power, input_norm=input_norm,
                      init_std=init_std, head=mlp_head(head_hidden, fa_linear))


# n = 4.5 as in the paper; per-sample L2 input (see zoo.archs.hebbian); init_std 0.5 instead of the paper's 1.0
KROTOV_ARCH = {"hidden": 2000, "power": 4.5, "input_norm": "l2", "init_std": 0.5}

register(Family(
    name="krotov_mlp",
    learning_rule="krotov_hopfield",
    summary=("Krotov-Hopfield unsupervised layer (competing hidden units) with the paper's BioCell head "
             "tanh(beta * S relu(W v)^n), trained on sum |c - t|^m."),
    build=build_krotov_mlp,
    trainer=KrotovBioCellTrainer,
    default_arch={**KROTOV_ARCH, "beta": 1.0},
    paper=PAPER,
))

register(Family(
    name="krotov_fc",
    learning_rule="krotov_hopfield+bp",
    summary="Krotov-Hopfield unsupervised layer with a linear read-out trained by cross-entropy.",
    build=build_krotov_fc,
    trainer=KrotovTrainer,
    default_arch=dict(KROTOV_ARCH),
    paper=PAPER,
))

register(Family(
    name="krotov_fa",
    learning_rule="krotov_hopfield+fa",
    summary=("Krotov-Hopfield unsupervised layer with a two-layer head trained by feedback alignment "
             "(cross-entropy)."),
    build=build_krotov_fa,
    trainer=KrotovTrainer,
    default_arch={**KROTOV_ARCH, "head_hidden": 500},
    paper=PAPER + "; Lillicrap et al., Random synaptic feedback weights support error backpropagation "
                  "for deep learning (Nat. Commun. 2016)",
    alignment=gradient_alignment,   # the head's layers: FA's update vs the true gradient (Hebbian layer excluded)
))
