"""How well a learning rule follows the gradient: the angle between its weight update and backprop's.

    angles = family.alignment(model, x, y)     # {"hidden.0.weight": 12.3, ..., "head.weight": 0.0}

For each weight tensor (one per layer; biases are left out) the angle in degrees between the update direction
the rule computes on the batch and the true gradient of the cross-entropy ``-dL/dW`` on the same batch, with
dropout off. 0 means the rule moves the weights exactly like backprop, 90 means orthogonal (no descent).

Rule layers that replace the backward pass (feedback alignment, sign symmetry, direct feedback) run their own
backward only while :meth:`~zoo.rules.base.RuleLayer.rule_active`: in training mode and outside
:func:`~zoo.rules.base.true_gradients`. Inside that block
(and in eval mode) they are plain layers, so the same model gives both sides of the comparison.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from zoo.rules.base import true_gradients

ANGLE_METRICS = {
    "alignment_deg": "alignment with backprop (degrees between the rule's update and the true gradient, per layer)",
    "feedback_angle_deg": "feedback and forward weights (degrees between each layer's feedback matrix B and its W, "
                          "per layer; 0 is backprop's W^T transport)",
}
"""The per-layer angle tables a manifest entry's metrics may hold, with what each measures."""

RuleUpdate = Callable[[nn.Module, Tensor, Tensor], dict[str, Tensor]]


def layer_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable weight tensors compared, by parameter name: every parameter with 2 or more dimensions except
    the feedback parameters of rule layers (:attr:`~zoo.rules.base.RuleLayer.feedback_names`)."""
    feedback = {f"{prefix}.{name}" if prefix else name for prefix, module in model.named_modules()
                for name in getattr(module, "feedback_names", ())}
    return {name: p for name, p in model.named_parameters() if p.requires_grad and p.dim() >= 2
            and name not in feedback}


def feedback_angles(model: nn.Module) -> dict[str, float]:
    """Per layer with a feedback matrix ``B`` of its weight's shape (feedback alignment's fixed ``B``,
    Kolen-Pollack's learned one), the angle in degrees between ``B`` and ``W``: 0 when the backward pass sends the
    error through ``W^T`` itself, as backprop does. Keyed by the weight's name; empty for other models."""
    angles = {}
    for prefix, module in model.named_modules():
        weight, feedback = getattr(module, "weight", None), getattr(module, "feedback", None)
        if isinstance(weight, Tensor) and isinstance(feedback, Tensor) and feedback.shape == weight.shape:
            angles[f"{prefix}.weight" if prefix else "weight"] = round(angle_degrees(feedback, weight), 4)
    return angles


def cross_entropy_gradients(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """``dL/dW`` of the cross-entropy for each weight, as the model's layers compute it (the rule's own backward
    pass, or backprop inside :func:`true_gradients`). Leaves ``.grad`` untouched."""
    weights = layer_weights(model)
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(weights.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(p))
            for (name, p), g in zip(weights.items(), grads)}


def backprop_update(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The steepest-descent direction ``-dL/dW`` given by exact backprop."""
    with true_gradients():
        return {name: -g for name, g in cross_entropy_gradients(model, x, y).items()}


def gradient_rule_update(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The update direction of a rule that lives in its layers' backward pass: ``-(the layers' dL/dW)``."""
    return {name: -g for name, g in cross_entropy_gradients(model, x, y).items()}


def angle_degrees(a: Tensor, b: Tensor) -> float:
    """The angle between two tensors seen as vectors, in degrees (90 if either is zero)."""
    a64, b64 = a.detach().flatten().double(), b.detach().flatten().double()
    denom = a64.norm() * b64.norm()
    if denom == 0:
        return 90.0
    cos = float((a64 @ b64) / denom)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def compare(model: nn.Module, x: Tensor, y: Tensor, rule_update: RuleUpdate = gradient_rule_update) -> dict[str, float]:
    """Per-layer angle (degrees) between ``rule_update(model, x, y)`` and backprop's update, with dropout off.

    The model runs in training mode (so rule layers use their rule, and batch norm the batch's statistics, as in a
    training step) with every dropout module in eval mode. Its parameters, buffers (batch norm's running
    statistics), ``.grad`` fields and train/eval modes are left as they were.
    """
    modes = {m: m.training for m in model.modules()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    try:
        with torch.enable_grad():
            rule = rule_update(model, x, y)
            exact = backprop_update(model, x, y)
    finally:
        for m, training in modes.items():
            m.training = training
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
    return {name: round(angle_degrees(rule[name], exact[name]), 4) for name in exact if name in rule}


def gradient_alignment(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """``Family.alignment`` for rules whose layers compute the update in their backward pass (backprop, feedback
    alignment, sign symmetry, direct feedback alignment): 0 degrees everywhere for backprop."""
    return compare(model, x, y, gradient_rule_update)
