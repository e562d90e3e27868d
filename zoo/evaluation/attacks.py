"""Adversarial accuracy under three attack models, with foolbox's FGSM and L∞ PGD (the ``analysis`` extra).

Which gradient an attacker follows decides what a robustness figure means for a rule that does not backpropagate:

``white_box``      the true input gradient of the trained network (every rule layer is a plain layer in eval
                   mode): what an attacker holding the weights does;
``rule_gradient``  the input "gradient" the learning rule itself propagates: the model's rule layers run their own
                   backward pass (``B`` instead of ``W^T`` for feedback alignment, ``sign(W)`` for sign symmetry,
                   the projected output error for DFA, the projected target for DRTP), as published robustness
                   studies of feedback alignment computed it. Defined for models with rule layers only;
``transfer``       adversarial images crafted white-box on the backprop model of the same architecture and dataset,
                   then shown to the model: the control that tells gradient masking from real robustness.

PGD: ``PGD_STEPS`` steps of ``2.5 * eps / PGD_STEPS`` from a uniform random start, one restart (Madry et al.'s
step rule); FGSM: one step of size ``eps``. All images stay in [0, 1]. Runs are seeded (``ATTACK_SEED``).

Saturated logits (margins beyond ~100, where the float32 softmax is exactly one-hot) give the cross-entropy no input
gradient at all, and an attack there would silently do nothing. The attacked logits are therefore divided by a
temperature: the smallest of :data:`LOGIT_TEMPERATURES` that leaves at most :data:`MAX_ZERO_GRADIENT` of the images
without a gradient (:func:`logit_temperature`), recorded per attack model in the manifest. Dividing by a positive
number changes no prediction, only the loss the attack climbs; a model no temperature rescues is refused.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from zoo.engine.devices import model_device
from zoo.evaluation.extras import optional_import
from zoo.evaluation.metric_grid import (
    ATTACK_MODELS,
    ATTACKS,
    LOGIT_TEMPERATURES,
    attack_epsilons,
    perturbation_size,
)
from zoo.rules.base import RuleLayer, give_labels
from zoo.weights.manifest import Entry

PGD_STEPS = 20
PGD_REL_STEPSIZE = 2.5 / PGD_STEPS
ATTACK_SEED = 0
ATTACK_BATCH = 500
ATTACK_IMAGES = 1000  # the first test images; PGD on all 10,000 would cost 10x for the same comparison
MAX_ZERO_GRADIENT = 0.01  # above this fraction of images with no gradient at all, an attack is refused


class Tempered(nn.Module):
    """``model`` with its logits divided by ``temperature`` (the same predictions, a softer softmax)."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"a logit temperature must be a positive number, got {temperature!r}")
        self.model, self.temperature = model, float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) / self.temperature


def has_rule_gradient(model: nn.Module) -> bool:
    """Whether the model has layers whose backward pass is its rule's own (so ``rule_gradient`` is defined)."""
    return any(isinstance(m, RuleLayer) for m in model.modules())


@contextlib.contextmanager
def input_gradient_of(model: nn.Module, attack_model: str) -> Iterator[None]:
    """Inside this block, autograd's input gradient of ``model`` is the true one (``white_box``) or the rule's
    (``rule_gradient``: rule layers in training mode, every other module, e.g. dropout, in eval mode)."""
    if attack_model not in ("white_box", "rule_gradient"):
        raise ValueError(f"a gradient comes from 'white_box' or 'rule_gradient', not {attack_model!r}")
    if attack_model == "rule_gradient" and not has_rule_gradient(model):
        raise ValueError(f"{type(model).__name__} has no rule layers: its rule propagates no input gradient")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    if attack_model == "rule_gradient":
        for module in model.modules():
            if isinstance(module, RuleLayer):
                module.training = True
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def adversarial_images(model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], attack: str,
                       attack_model: str = "white_box") -> list[Tensor]:
    """One batch of adversarial images per ε, crafted on ``model`` with ``attack`` (``fgsm`` | ``pgd``) following
    the gradient of ``attack_model`` (``white_box`` | ``rule_gradient``)."""
    fb = optional_import("foolbox", "adversarial attacks", "foolbox")
    if attack == "fgsm":
        method = fb.attacks.LinfFastGradientAttack(random_start=False)
    elif attack == "pgd":
        method = fb.attacks.LinfProjectedGradientDescentAttack(rel_stepsize=PGD_REL_STEPSIZE, steps=PGD_STEPS,
                                                               random_start=True)
    else:
        raise ValueError(f"unknown attack {attack!r}; accepted: {ATTACKS}")
    with input_gradient_of(model, attack_model):
        give_labels(model, y)  # DRTP's rule gradient is its projected target
        try:
            _, clipped, _ = method(fb.PyTorchModel(model, bounds=(0.0, 1.0)), x, y, epsilons=epsilons)
        finally:
            give_labels(model, None)
    return [adv.detach() for adv in clipped]


def zero_gradient_fraction(model: nn.Module, x: Tensor, y: Tensor, attack_model: str) -> float:
    """The fraction of images whose cross-entropy input gradient (of ``attack_model``) is exactly zero: a softmax
    saturated in float32 (logit margins beyond ~100, e.g. summed goodness), where FGSM and PGD cannot move."""
    with input_gradient_of(model, attack_model):
        give_labels(model, y)
        try:
            inputs = x.detach().clone().requires_grad_(True)
            loss = nn.functional.cross_entropy(model(inputs), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, inputs)
        finally:
            give_labels(model, None)
    return float((grad.flatten(1).abs().amax(1) == 0).float().mean())


def _batches(images: Tensor, labels: Tensor, device: torch.device, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """``(x, y)`` batches of uint8 ``images`` as floats in [0, 1] and their ``labels``, on ``device``."""
    for start in range(0, len(images), batch_size):
        yield (images[start:start + batch_size].to(device, torch.float32).div_(255.0),
               labels[start:start + batch_size].to(device))


def _masked_fraction(model: nn.Module, images: Tensor, labels: Tensor, attack_model: str, batch_size: int) -> float:
    """:func:`zero_gradient_fraction` over all the uint8 ``images``, batch by batch."""
    zeros = sum(zero_gradient_fraction(model, x, y, attack_model) * len(y)
                for x, y in _batches(images, labels, model_device(model), batch_size))
    return zeros / len(labels)


def _masked_message(model: nn.Module, attack_model: str, fraction: float, tried: str) -> str:
    return (f"{type(model).__name__}: the {attack_model} cross-entropy input gradient is exactly zero for "
            f"{fraction:.1%} of the images {tried}(accepted: at most {MAX_ZERO_GRADIENT:.0%}), so FGSM and PGD "
            f"cannot be run on it: they would be silently weaker there")


def logit_temperature(model: nn.Module, images: Tensor, labels: Tensor, attack_model: str, *,
                      batch_size: int = ATTACK_BATCH) -> float:
    """The smallest of :data:`LOGIT_TEMPERATURES` at which at most :data:`MAX_ZERO_GRADIENT` of the uint8
    ``images`` give ``model``'s ``attack_model`` cross-entropy no input gradient; :class:`ValueError` naming the
    fraction left at the largest one otherwise."""
    fraction = 1.0
    for temperature in LOGIT_TEMPERATURES:
        fraction = _masked_fraction(Tempered(model, temperature), images, labels, attack_model, batch_size)
        if fraction <= MAX_ZERO_GRADIENT:
            return temperature
    raise ValueError(_masked_message(model, attack_model, fraction,
                                     f"even with the logits divided by {LOGIT_TEMPERATURES[-1]:g} "))


def _correct(model: nn.Module, x: Tensor, y: Tensor) -> int:
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


def robust_top1(model: nn.Module, images: Tensor, labels: Tensor, epsilon_keys: tuple[str, ...], *, attack: str,
                attack_model: str, source: nn.Module | None = None, temperature: float = 1.0,
                batch_size: int = ATTACK_BATCH) -> dict[str, float]:
    """Top-1 (%) of ``model`` on adversarial versions of uint8 ``images``, per ε key, crafted on the logits divided
    by ``temperature``. ``transfer`` crafts them white-box on ``source`` (the backprop model of the same
    architecture). Refused (:class:`ValueError`) where that temperature leaves the attack without gradients."""
    if attack_model not in ATTACK_MODELS:
        raise ValueError(f"unknown attack model {attack_model!r}; accepted: {ATTACK_MODELS}")
    if attack_model == "transfer" and source is None:
        raise ValueError("a transfer attack needs the source model it is crafted on")
    crafted_on, gradient = (source, "white_box") if attack_model == "transfer" else (model, attack_model)
    assert crafted_on is not None
    tempered = Tempered(crafted_on, temperature)
    device = model_device(model)
    model.eval()
    torch.manual_seed(ATTACK_SEED)
    epsilons = [perturbation_size(k) for k in epsilon_keys]
    correct = dict.fromkeys(epsilon_keys, 0)
    fraction = _masked_fraction(tempered, images, labels, gradient, batch_size)
    if fraction > MAX_ZERO_GRADIENT:
        raise ValueError(_masked_message(crafted_on, gradient, fraction, f"at logit temperature {temperature:g} "))
    for x, y in _batches(images, labels, device, batch_size):
        for key, adv in zip(epsilon_keys, adversarial_images(tempered, x, y, epsilons, attack, gradient)):
            correct[key] += _correct(model, adv, y)
    return {k: round(100.0 * c / len(labels), 2) for k, c in correct.items()}


def robustness_metrics(model: nn.Module, images: Tensor, labels: Tensor, dataset: str, *,
                       source: nn.Module | None = None, source_id: str | None = None,
                       source_sha256: str | None = None, n_images: int = ATTACK_IMAGES) -> dict[str, Any]:
    """The manifest's ``metrics.robustness``: FGSM and PGD accuracy at the dataset's ε grid under each attack model
    that applies (``rule_gradient`` where the model has rule layers, ``transfer`` where a ``source`` is given, named
    by ``source_id`` and the SHA-256 of its checkpoint), on the first ``n_images`` test images, with what was run
    (the logit temperature of each attack model included)."""
    if (source is None) != (source_id is None) or (source is None) != (source_sha256 is None):
        raise ValueError("a transfer source needs its id and checkpoint SHA-256, and those need the source: got "
                         f"source={'a model' if source is not None else None}, source_id={source_id!r}, "
                         f"source_sha256={source_sha256!r}")
    images, labels = images[:n_images], labels[:n_images]
    keys = attack_epsilons(dataset)
    model.eval()
    crafted_on = {"white_box": (model, "white_box")}
    if has_rule_gradient(model):
        crafted_on["rule_gradient"] = (model, "rule_gradient")
    if source is not None:
        crafted_on["transfer"] = (source.eval(), "white_box")
    temperatures = {m: logit_temperature(on, images, labels, gradient) for m, (on, gradient) in crafted_on.items()}
    out: dict[str, Any] = {
        "n_eval": int(len(labels)),
        "top1_clean": round(100.0 * _correct(model, images.to(torch.float32).div(255.0), labels) / len(labels), 2),
        "pgd": {"steps": PGD_STEPS, "step_size": "2.5 * eps / steps", "random_start": True, "restarts": 1},
        "transfer_source": source_id,
        "transfer_source_sha256": source_sha256,
        "logit_temperature": temperatures,
    }
    for attack in ATTACKS:
        out[f"top1_{attack}"] = {m: robust_top1(model, images, labels, keys, attack=attack, attack_model=m,
                                                source=source, temperature=t) for m, t in temperatures.items()}
    return out


def transfer_source(entry: Entry, entries: Mapping[str, Entry]) -> Entry | None:
    """The published entry among ``entries`` that a transfer attack on ``entry`` (published, or a run folder's) is
    crafted on: the backprop model of the same architecture and dataset (``bp_mlp`` for networks of a rule's own,
    which take the same flattened images), if not ``entry`` itself; ``None`` where there is none."""
    from zoo.registry import get_family

    source = f"bp_{get_family(entry.entrypoint).architecture or 'mlp'}.{entry.dataset}"
    candidate = entries.get(source)
    return candidate if source != entry.name and candidate is not None and candidate.published else None


def stale_transfer_source(entry: Entry, entries: Mapping[str, Entry]) -> str | None:
    """Why the transfer attack recorded in ``entry``'s ``metrics.robustness`` (published, or a run folder's) no longer
    describes the zoo (its source checkpoint was replaced, withdrawn or newly published), or ``None`` when it does
    (or nothing is recorded): figures to measure again with ``python -m training.robustness``."""
    block = entry.metrics.get("robustness")
    if block is None:
        return None
    recorded = (block["transfer_source"], block["transfer_source_sha256"])
    source = transfer_source(entry, entries)
    current = (None, None) if source is None else (source.id, source.sha256)
    if recorded == current:
        return None
    return (f"{entry.id}: its transfer attack was crafted on {_named(*recorded)}, but the zoo's transfer source is "
            f"now {_named(*current)}")


def _named(source_id: str | None, sha256: str | None) -> str:
    return "no model" if source_id is None else f"{source_id} (sha256 {str(sha256)[:12]})"


def measure_checkpoint(model_id: str, images: Tensor, labels: Tensor, *, n_images: int = ATTACK_IMAGES,
                       source: str = "auto") -> dict[str, Any]:
    """:func:`robustness_metrics` of a published checkpoint (or a run folder's) on its test split (``images``,
    ``labels``), with its transfer source loaded from the zoo."""
    from zoo.api import get_entry, load, manifest

    entry = get_entry(model_id)
    crafted_on = transfer_source(entry, manifest().entries)
    if crafted_on is None:
        return robustness_metrics(load(model_id, source=source), images, labels, entry.dataset, n_images=n_images)
    return robustness_metrics(load(model_id, source=source), images, labels, entry.dataset,
                              source=load(crafted_on.id, source=source), source_id=crafted_on.id,
                              source_sha256=crafted_on.sha256, n_images=n_images)
