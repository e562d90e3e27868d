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
* ``krotov_fa``: a two-layer head with feedback alignment's layers (:func:`zoo.rules.feedback_alignment.fa_layers`).

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

Training is two-phase inside one :class:`KrotovTrainer` (see :class:`~zoo.engine.local_phase.HebbianPhaseTrainer`):
the recipe's ``fit.epochs`` is the total; the first ``rule.hebbian_epochs`` run the unsupervised rule, the rest train
the head. Starting from a published checkpoint (``training.train ... --init ID``) continues the unsupervised training
from its weights.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from zoo.archs.hebbian import HebbianNet, linear_head, mlp_head
from zoo.engine.distributed import SINGLE, Collective
from zoo.engine.local_phase import HebbianPhaseTrainer
from zoo.engine.trainer import GradientTrainer
from zoo.evaluation.alignment import gradient_alignment
from zoo.rules.base import Rule, Variant
from zoo.rules.feedback_alignment import LILLICRAP, fa_layers

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


class BioCellHead(nn.Module):
    """Krotov & Hopfield's supervised layer: ``c = tanh(beta * S h)``, ``S`` without bias.

    The outputs ``c`` lie in ``[-1, 1]``; the model returns them as its logits (argmax is the prediction).
    """

    def __init__(self, in_features: int, num_classes: int, beta: float) -> None:
        super().__init__()
        self.beta = float(beta)
        self.linear = nn.Linear(in_features, num_classes, bias=False)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.beta * self.linear(h))

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class BioCellTrainer(GradientTrainer):
    """Gradient descent on the BioCell loss (option ``m``, the loss power) instead of cross-entropy."""

    options = {**GradientTrainer.options, "m": 6.0}

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return biocell_loss(logits, y, float(self.config["m"]))


class KrotovTrainer(HebbianPhaseTrainer):
    """Krotov-Hopfield unsupervised epochs, then the head (config ``p``, ``k``, ``delta`` and the common keys).

    The value returned for a Hebbian step is the mean ``|sum |W_i|^p - 1|`` of the updated rows (it falls
    to 0 as the rule converges); for a head step, the head's loss.
    """

    options = {**HebbianPhaseTrainer.options, "p": 3.0, "k": 7, "delta": 0.4}

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
    options = {**KrotovTrainer.options, "m": 6.0}

    def head_config_extra(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {"m": float(config["m"])}


# ------------------------------------------------------------------------------------------------- the rule

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
    return HebbianNet(in_shape, num_classes, mean, std, hidden=hidden, power=power, input_norm=input_norm,
                      init_std=init_std, head=mlp_head(head_hidden, fa_layers(num_classes).linear))


# n = 4.5 as in the paper; per-sample L2 input (see zoo.archs.hebbian); init_std 0.5 instead of the paper's 1.0
KROTOV_ARCH = {"hidden": 2000, "power": 4.5, "input_norm": "l2", "init_std": 0.5}

RULES = (
    Rule(name="krotov", learning_rule="krotov_hopfield",
         description="trained with the Krotov-Hopfield rule: unsupervised competing hidden units (no labels), "
                     "then a head trained with labels: BioCell (tanh, sum |c - t|^m loss), linear, "
                     "or a two-layer feedback-alignment head.",
         trainer=KrotovTrainer, paper=PAPER, variants={
             "mlp": Variant(
                 summary="Krotov-Hopfield unsupervised layer (competing hidden units) with the paper's BioCell head "
                         "tanh(beta * S relu(W v)^n), trained on sum |c - t|^m.",
                 build=build_krotov_mlp, options={**KROTOV_ARCH, "beta": 1.0}, trainer=KrotovBioCellTrainer),
             "fc": Variant(
                 summary="Krotov-Hopfield unsupervised layer with a linear read-out trained by cross-entropy.",
                 build=build_krotov_fc, options=KROTOV_ARCH, learning_rule="krotov_hopfield+bp"),
             "fa": Variant(
                 summary="Krotov-Hopfield unsupervised layer with a two-layer head trained by feedback alignment "
                         "(cross-entropy).",
                 build=build_krotov_fa, options={**KROTOV_ARCH, "head_hidden": 500}, learning_rule="krotov_hopfield+fa",
                 paper=PAPER + "; " + LILLICRAP,
                 # the head's layers: FA's update vs the true gradient (the Hebbian layer is excluded)
                 alignment=gradient_alignment)}),
)
