"""Kolen-Pollack learning (Akrout, Wilson, Humphreys, Lillicrap & Tweed, "Deep learning without weight transport",
NeurIPS 2019): the backward pass sends the error through feedback weights ``B`` that are learned, not copied.

Each layer keeps a feedback matrix ``B`` of the shape of its weight ``W`` (a kernel of the same shape for a
convolution). The backward pass computes ``grad_input = grad_output @ B`` (for a convolution, the transposed
convolution with ``B``), and ``B`` receives exactly the gradient ``W`` receives, ``dy^T x`` (the outer product of
the error a layer gets and the input it saw), which each synapse knows locally. With the same optimiser step and
weight decay on both,

    dW = -lr * (dy^T x) - lr * wd * W,        dB = -lr * (dy^T x) - lr * wd * B,

so ``W - B`` shrinks by ``(1 - lr * wd)`` per plain SGD step and ``B`` comes to equal ``W``: backprop's
``W^T`` transport, reached without transporting a weight. ``B`` is a trainable parameter named ``feedback`` (saved
in the checkpoint); the recipes train with SGD, momentum and weight decay as the paper does, and
:class:`KolenPollackTrainer` refuses a weight decay of 0 (``W - B`` would then never shrink). :func:`zoo.evaluation.
alignment.feedback_angles` reports the angle between each ``B`` and ``W``.

The rule is active in training mode only (:class:`~zoo.rules.base.RuleLayer`): in eval mode the layers are plain
layers and ``B`` takes no part. The module uses only the zoo's public rule API, as a rule written outside the
repository does: ``examples/kolen_pollack`` packages this same file (a link to it) as an installable plugin.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zoo.archs.base import LayerKit
from zoo.engine.trainer import GradientTrainer
from zoo.evaluation.alignment import gradient_alignment
from zoo.rules.base import Rule, RuleLayer, memory_format_of


class _LearnedFeedback(RuleLayer):
    """The feedback matrix ``B`` of a Kolen-Pollack layer: a parameter shaped like ``weight``, drawn like the
    layer's own initialisation (uniform in ``+-1/sqrt(fan_in)``), independently of ``W``."""

    weight: Tensor
    feedback: nn.Parameter
    feedback_names = ("feedback",)  # not a forward weight: alignment angles leave it out

    def _init_feedback(self) -> None:
        bound = 1.0 / math.sqrt(self.weight[0].numel())
        self.feedback = nn.Parameter(torch.empty_like(self.weight).uniform_(-bound, bound))


class _LinearFn(torch.autograd.Function):
    """``y = x W^T + b``; backward: ``dx = dy B``, ``dW = dB = dy^T x``, ``db = sum dy``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor) -> Tensor:
        ctx.save_for_backward(x, feedback)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, feedback = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[0]:
            grad_x = grad_out.matmul(feedback.to(grad_out.dtype))
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[3]:
            grad_w = g2.t().mm(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g2.sum(0)
        grad_feedback = grad_w.clone() if grad_w is not None and ctx.needs_input_grad[3] else None
        return grad_x, grad_w if ctx.needs_input_grad[1] else None, grad_b, grad_feedback


class KolenPollackLinear(_LearnedFeedback, nn.Linear):
    """An ``nn.Linear`` whose backward pass uses its learned feedback matrix ``feedback`` (``[out, in]``, like
    ``weight``) instead of ``W``, and gives ``feedback`` the gradient of ``weight`` (see the module doc)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._init_feedback()

    def forward(self, x: Tensor) -> Tensor:
        if not self.rule_active():
            return F.linear(x, self.weight, self.bias)
        return _LinearFn.apply(x, self.weight, self.bias, self.feedback)


class _ConvFn(torch.autograd.Function):
    """``y = conv2d(x, W, b)``; backward: ``dx`` the transposed convolution with ``B``, ``dW = dB`` and ``db`` as
    usual, all three from one ``aten.convolution_backward`` with ``B`` in place of ``W``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, feedback: Tensor,
                layer: "KolenPollackConv2d") -> Tensor:
        ctx.save_for_backward(x, feedback)
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, feedback = ctx.saved_tensors
        layer: KolenPollackConv2d = ctx.layer
        want_w = ctx.needs_input_grad[1] or ctx.needs_input_grad[3]
        want_b = ctx.has_bias and ctx.needs_input_grad[2]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out.contiguous(memory_format=memory_format_of(x)), x, feedback.to(grad_out.dtype),
            [layer.out_channels] if ctx.has_bias else None, list(layer.stride), list(layer.padding),
            list(layer.dilation), False, [0, 0], layer.groups, [ctx.needs_input_grad[0], want_w, want_b])
        grad_feedback = grad_w.clone() if ctx.needs_input_grad[3] else None
        return (grad_x, grad_w if ctx.needs_input_grad[1] else None, grad_b if want_b else None, grad_feedback,
                None)


class KolenPollackConv2d(_LearnedFeedback, nn.Conv2d):
    """An ``nn.Conv2d`` whose backward pass uses its learned feedback kernel ``feedback`` (the shape of ``weight``)
    and gives it the gradient of ``weight``; only numeric ``padding`` with ``padding_mode="zeros"``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._init_feedback()

    def forward(self, x: Tensor) -> Tensor:
        if not self.rule_active():
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return _ConvFn.apply(x, self.weight, self.bias, self.feedback, self)


def kolen_pollack_layers(num_classes: int) -> LayerKit:
    """Every fully connected layer a :class:`KolenPollackLinear`, every convolution a :class:`KolenPollackConv2d`."""
    def conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
             bias: bool = True, in_shape: tuple[int, int, int]) -> nn.Module:
        return KolenPollackConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)

    return LayerKit(linear=KolenPollackLinear, conv=conv)


class KolenPollackTrainer(GradientTrainer):
    """The gradient trainer, training ``W`` and ``B`` with one optimiser (the same step, momentum and weight
    decay). Its defaults are the paper's SGD with momentum 0.9 and weight decay 1e-4; a weight decay of 0 is
    refused, since only the decay makes ``B`` converge to ``W``."""

    options = {**GradientTrainer.options, "optimizer": "sgd", "lr": 0.05, "weight_decay": 1e-4}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(model, config, *args, **kwargs)
        if not float(self.config["weight_decay"]) > 0:
            raise ValueError("Kolen-Pollack learning needs fit.rule.weight_decay > 0 (the decay is what makes the "
                             f"feedback weights converge to the forward weights), got {self.config['weight_decay']!r}")


AKROUT = ("Akrout, Wilson, Humphreys, Lillicrap & Tweed, Deep learning without weight transport (NeurIPS 2019)")

RULES = (
    Rule(name="kp", learning_rule="kolen_pollack",
         description="trained with Kolen-Pollack learning: learned feedback weights B replace W^T in the backward "
                     "pass and receive W's update plus weight decay, so they come to align with W (stored in the "
                     "checkpoint).",
         trainer=KolenPollackTrainer, paper=AKROUT, layers=kolen_pollack_layers, architectures=("mlp", "lenet", "cnn"),
         alignment=gradient_alignment),
)
