"""What a learning rule declares, and the switch shared by every layer with a custom backward pass.

A rule module under ``zoo/rules/`` holds one rule (or a few close relatives): its layers, the state they carry, its
training step (a :class:`~zoo.engine.trainer.Trainer`) and a tuple ``RULES`` of :class:`Rule` declarations. The
registry (:mod:`zoo.registry`) finds the modules and generates the model families from the declarations:

* a rule with a ``layers`` kit trains every architecture under ``zoo/archs/`` (or the ones it names): family
  ``<rule>_<architecture>`` is the architecture built from the rule's layer types;
* a rule whose network is its own (a Hebbian layer with a head, a net with learned inverses) lists it in
  ``variants``: family ``<rule>_<variant>``.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor, nn

from zoo.archs.base import LayerKit
from zoo.engine.trainer import Trainer

Alignment = Callable[[nn.Module, Tensor, Tensor], dict[str, float]]

_TRUE_GRADIENTS: contextvars.ContextVar[bool] = contextvars.ContextVar("zoo_true_gradients", default=False)


@contextlib.contextmanager
def true_gradients() -> Iterator[None]:
    """Inside this block the rules' layers compute autograd's exact gradients (plain Linear / Conv2d)."""
    token = _TRUE_GRADIENTS.set(True)
    try:
        yield
    finally:
        _TRUE_GRADIENTS.reset(token)


class RuleLayer(nn.Module):
    """Base of the layers whose backward pass is the learning rule's own (feedback alignment, sign symmetry, direct
    feedback). Such a layer computes the plain forward pass; it runs its own backward only while
    :meth:`rule_active`. Otherwise (``model.eval()`` for inference, input gradients, attacks, or inside
    :func:`true_gradients`) it is a plain layer with autograd's exact gradients."""

    feedback_names: tuple[str, ...] = ()
    """Parameters that carry only the backward pathway (Kolen-Pollack's learned ``B``): they take no part in the
    forward function, so the update-alignment angles leave them out."""

    def rule_active(self) -> bool:
        """In training mode, with autograd recording, and outside :func:`true_gradients`."""
        return self.training and torch.is_grad_enabled() and not _TRUE_GRADIENTS.get()

    def receive_labels(self, labels: Tensor | None) -> None:
        """Keep the batch's labels for the next backward pass, for rules that learn from the labels directly
        (DRTP); ``None`` forgets them. Other rules ignore them."""


def memory_format_of(x: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-D tensor laid out channels-last (and not also plainly contiguous), else
    ``torch.contiguous_format``: what a custom backward pass makes its gradients contiguous in, so a conv net trained
    in channels-last stays in it."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def give_labels(model: nn.Module, labels: Tensor | None) -> None:
    """Hand the labels of the next batch (or ``None``) to every rule layer of ``model``."""
    for module in model.modules():
        if isinstance(module, RuleLayer):
            module.receive_labels(labels)


@dataclass(frozen=True)
class Variant:
    """A network a rule builds itself rather than through an architecture's layer slots.

    ``build(in_shape, num_classes, mean, std, **options)`` returns it; ``options`` are its keys with their defaults;
    ``summary`` describes the whole family. ``learning_rule``, ``trainer``, ``paper`` and ``alignment`` override
    the rule's where this network trains differently (e.g. a Krotov layer with a feedback-alignment head).
    ``extends`` names the architecture whose network this is, with the rule's extra state (e.g. DTP's MLP with
    learned inverses), so benchmarks compare it with that architecture's other families; ``None`` for a network
    of the rule's own.
    """

    summary: str
    build: Callable[..., nn.Module]
    options: Mapping[str, Any] = field(default_factory=dict)
    extends: str | None = None
    datasets: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10")
    learning_rule: str | None = None
    trainer: type[Trainer] | None = None
    paper: str | None = None
    alignment: Alignment | None = None


@dataclass(frozen=True)
class Rule:
    """One learning rule.

    ``name`` prefixes its family names; ``learning_rule`` is the name recorded in the manifest; ``description``
    completes an architecture's summary ("trained with ..."). ``trainer`` is its training step and ``alignment``
    (where a gradient exists to compare with) measures the angle between its update and backprop's per layer.

    ``layers(num_classes=..., **options)`` returns a fresh :class:`~zoo.archs.base.LayerKit` for one model; the
    rule then applies to the architectures named in ``architectures`` (``None``: every architecture). ``options``
    are the rule's own construction keys (recorded in each checkpoint's ``arch``), ``arch_defaults`` per-architecture
    changes of the architecture's defaults. ``variants`` are the networks it builds itself.
    """

    name: str
    learning_rule: str
    description: str
    trainer: type[Trainer]
    paper: str = ""
    layers: Callable[..., LayerKit] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    architectures: tuple[str, ...] | None = None
    arch_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    variants: Mapping[str, Variant] = field(default_factory=dict)
    alignment: Alignment | None = None
