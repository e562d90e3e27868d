"""Semi-Hebbian MLP: a hidden layer trained by a local Hebbian rule, a linear read-out trained by backprop.

Hidden layer ``z = relu(W v)`` (``v`` the normalised input, see :mod:`zoo.archs.hebbian`); read-out
``Linear(hidden, classes)`` trained with cross-entropy on the (detached) hidden activity. The local rule is an
architecture option (``local_rule`` in the ``arch`` record, so a checkpoint says how its features were learned):

``"gupta"`` (default): Gupta, Ambikapathi & Ramasamy's thresholded Hebbian rule (HebbNet, ICASSP 2021). With the
    batch-mean Hebbian product ``P = z^T v / B``:

    * threshold: subtract ``theta``, the running mean of the products of all previous batches (``D = P - theta``);
    * gradient sparsity: keep only the entries of ``D`` at or above its ``1 - keep_fraction`` quantile
      (estimated on an evenly strided subset of 64k entries: :func:`quantile_threshold`);
    * ``W += lr * D_kept``, then every row of ``W`` is rescaled to unit L2 norm.

    The kept updates are all positive, so without the row normalisation the weights, and with them ``z`` and the
    next update, grow without bound: the plain Hebbian seed diverged to NaN. With it the rule moves each unit's
    weight direction towards the inputs that excite it more than usual, at a bounded step.

``"oja"``: Oja's rule per unit, ``dW = lr * (z^T v - diag(mean z^2) W)``, whose fixed point has unit-norm rows.
    It is stable while ``lr * z^2 < 2`` (with ``input_norm="standard"`` ``z`` reaches ~10-30: ``lr <= 1e-4``;
    ``"standard_l2"`` keeps ``z <= ||W_i||``). Its units do not compete: they all drift towards the leading
    principal direction, and the read-out loses accuracy as they do (measured: 95.1 % -> 77.7 % on a 20k-image
    probe when ``lr`` is large enough to move the weights). It is offered for comparison.

Measured (2000 units, 20k MNIST training images, linear probe): random unit-norm rows 95.5 %; Gupta's rule at
``hebbian_lr=3e-5`` 95.4 %; at ``1e-3`` the kept (positive) updates add a common component to every row (mean
pairwise |cos| 0.03 -> 0.15) and the probe falls to 90.2 %. Without competition between units, this rule does not
learn better-than-random features for a linear read-out; it must stay gentle.

:func:`hebb_update` is the plain rule ``dW = lr * z^T v / B`` (not offered as a family option: it diverges).

Training (:class:`SemiHebbTrainer`, keys of :class:`~zoo.engine.local_phase.HebbianPhaseTrainer`): the Hebbian layer
learns during the first ``hebbian_epochs`` epochs; the read-out is trained during every epoch
(``head_during_hebbian`` defaults to true here), so one pass learns both, as in HebbNet. The running threshold
``theta`` is state of the trainer, not of the model: continuing from a checkpoint (``--init``) restarts it.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from zoo.archs.hebbian import HebbianNet, linear_head
from zoo.engine.distributed import SINGLE, Collective
from zoo.engine.local_phase import HebbianPhaseTrainer
from zoo.rules.base import Rule, Variant

LOCAL_RULES = ("gupta", "oja")
GUPTA = ("Gupta, Ambikapathi & Ramasamy, HebbNet: A simplified Hebbian learning framework to do biologically "
         "plausible learning (ICASSP 2021)")
QUANTILE_SAMPLE = 65536
OJA = "Oja, A simplified neuron model as a principal component analyzer (J. Math. Biol. 1982)"


def hebbian_product(z: Tensor, v: Tensor) -> Tensor:
    """The batch-mean Hebbian product ``z^T v / B`` ``[hidden, inputs]``."""
    return z.t() @ v / v.shape[0]


def normalise_rows(weight: Tensor) -> Tensor:
    """Rescale each row of ``weight`` to unit L2 norm, in place."""
    return weight.div_(weight.norm(dim=1, keepdim=True).clamp_min(1e-12))


def quantile_threshold(values: Tensor, q: float, max_sample: int = QUANTILE_SAMPLE) -> Tensor:
    """The ``q`` quantile of ``values`` (lower value); on more than ``max_sample`` entries, estimated on an
    evenly strided subset of ``max_sample`` to ``2 * max_sample`` entries (deterministic, and exact to
    ~1/sqrt(max_sample) in rank) instead of a selection over all of them."""
    flat = values.flatten()
    if flat.numel() > max_sample:
        flat = flat[::flat.numel() // max_sample]
    kth = min(flat.numel(), max(1, int(round(q * flat.numel()))))
    return flat.kthvalue(kth).values


def hebb_update(weight: Tensor, v: Tensor, lr: float) -> None:
    """Plain Hebb, ``W += lr * relu(W v)^T v / B``, in place: no threshold, no normalisation (it diverges)."""
    weight.add_(hebbian_product(torch.relu(v @ weight.t()), v), alpha=lr)


def gupta_update(weight: Tensor, v: Tensor, lr: float, theta: Tensor, count: int,
                 keep_fraction: float = 0.1, collective: Collective = SINGLE) -> int:
    """One thresholded, sparse Hebbian update of ``weight`` in place; returns the new count of seen batches.

    ``theta`` (same shape as ``weight``) holds the running mean of the Hebbian products of the ``count`` previous
    batches and is updated in place. In a data-parallel run the processes average their batch products first.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    product = collective.mean_(hebbian_product(torch.relu(v @ weight.t()), v))
    update = product - theta if count > 0 else product.clone()
    if keep_fraction < 1.0:
        update.mul_(update >= quantile_threshold(update, 1.0 - keep_fraction))
    weight.add_(update, alpha=lr)
    normalise_rows(weight)
    theta.mul_(count / (count + 1)).add_(product, alpha=1.0 / (count + 1))
    return count + 1


def oja_update(weight: Tensor, v: Tensor, lr: float, collective: Collective = SINGLE) -> None:
    """Oja's rule for every unit, ``W += lr * (z^T v - diag(sum z^2) W) / B`` with ``z = relu(W v)``, in place
    (batch means averaged over the processes of a data-parallel run)."""
    z = torch.relu(v @ weight.t())
    decay = collective.mean_((z * z).mean(0).unsqueeze(1))
    weight.add_(collective.mean_(hebbian_product(z, v)) - decay * weight, alpha=lr)


class SemiHebbTrainer(HebbianPhaseTrainer):
    """The local rule named by the model's ``local_rule`` on the hidden layer, cross-entropy on the read-out.

    Config: ``keep_fraction`` (Gupta's gradient sparsity, fraction of updates kept) and the common keys of
    :class:`~zoo.engine.local_phase.HebbianPhaseTrainer`. The value returned per step is the read-out's loss (or, in a
    Hebbian-only epoch, the mean absolute change of the hidden weights).
    """

    options = {**HebbianPhaseTrainer.options, "keep_fraction": 0.1}
    head_during_hebbian_default = True
    state_attrs = ("theta", "count")

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        self.local_rule = self.net.local_rule or "gupta"
        if self.local_rule not in LOCAL_RULES:
            raise ValueError(f"unknown local_rule {self.local_rule!r}; accepted: {LOCAL_RULES}")
        self.keep_fraction = float(self.config["keep_fraction"])
        self.theta = torch.zeros_like(self.net.hebbian.weight)
        self.count = 0

    def hebbian_step(self, x: Tensor) -> float:
        weight = self.net.hebbian.weight.data
        before = weight.clone()
        v = self.net.hebbian_input(x)
        if self.local_rule == "gupta":
            self.count = gupta_update(weight, v, self.hebbian_lr(), self.theta, self.count, self.keep_fraction,
                                      self.collective)
        else:
            oja_update(weight, v, self.hebbian_lr(), self.collective)
        if not torch.isfinite(weight).all():
            raise FloatingPointError(f"{self.local_rule} update produced non-finite weights; lower hebbian_lr")
        return float((weight - before).abs().mean())


def build_semihebb_mlp(in_shape: tuple[int, int, int], num_classes: int, mean: Sequence[float],
                       std: Sequence[float], hidden: int, local_rule: str, input_norm: str) -> nn.Module:
    """Hebbian hidden layer ``relu(W v)`` (unit-norm rows at init) and a linear read-out."""
    if local_rule not in LOCAL_RULES:
        raise ValueError(f"unknown local_rule {local_rule!r}; accepted: {LOCAL_RULES}")
    model = HebbianNet(in_shape, num_classes, mean, std, hidden=hidden, power=1.0, input_norm=input_norm,
                       init_std=0.0, head=linear_head)
    model.local_rule = local_rule
    return model


RULES = (
    Rule(name="semihebb", learning_rule="semi_hebbian",
         description="trained with a thresholded Hebbian rule (Gupta et al.; Oja's rule as an option) on the "
                     "hidden layer while a linear read-out learns with gradients.",
         trainer=SemiHebbTrainer, paper=GUPTA, variants={"mlp": Variant(
             summary="Hidden layer trained by a local thresholded Hebbian rule (HebbNet; Oja's rule as an option) "
                     "with a linear read-out trained by backprop.",
             build=build_semihebb_mlp, options={"hidden": 2000, "local_rule": "gupta", "input_norm": "standard"})}),
)
