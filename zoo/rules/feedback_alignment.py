"""Feedback alignment and sign symmetry: the backward pass sends the error through a feedback matrix ``B``
instead of the transposed forward weights ``W^T``.

The rule lives in the layers. :class:`FeedbackLinear` and :class:`FeedbackConv2d` compute exactly the plain
``nn.Linear`` / ``nn.Conv2d`` forward; their custom autograd functions return

* ``grad_input = grad_output @ B`` (a transposed convolution with ``B`` for conv layers) instead of ``@ W``,
* ``grad_W`` and ``grad_b`` as usual (outer product of the layer's own input and the error it receives),

so the ordinary :class:`~zoo.engine.trainer.GradientTrainer` trains them. The rule is active in training mode only
(:meth:`zoo.rules.base.RuleLayer.rule_active`): after ``model.eval()`` the layers are plain layers, so input gradients
(saliency, FGSM) are the true gradients of the network function. The feedback matrix ``B`` depends on ``mode``:

``"fa"``    feedback alignment (Lillicrap et al. 2016): a fixed random ``B``, drawn like the layer's own weight
            initialisation (uniform in ``+-1/sqrt(fan_in)``) and never scaled. Stored as the persistent buffer
            ``feedback`` so it is saved in the checkpoint and restored on load (fine-tuning keeps it).
``"usf"``   uniform sign-concordant feedback (Liao, Leibo & Poggio 2016): ``B = s * sign(W)``.
``"brsf"``  batchwise random-magnitude sign-concordant feedback (Moskovitz et al. 2018):
            ``B = s * |R| * sign(W)`` with ``R ~ N(0, 1)`` drawn afresh at every backward pass.
``"frsf"``  fixed random-magnitude sign-concordant feedback: as brSF but ``R`` is fixed, stored as the
            persistent buffer ``feedback_r``.

Scaling of sign feedback (``feedback_scale``, recorded in the family's ``arch``): ``"norm"`` (default) sets the
scalar ``s = ||W||_F / ||M||_F`` with ``M = sign(W)`` or ``|R| * sign(W)``, so ``B`` has the same Frobenius norm as
the current ``W`` (for uSF ``s`` is the root-mean-square of ``W``); ``"none"`` uses ``s = 1``. The sign and the
scale are taken from ``W`` at the time of the backward pass. FA's ``B`` is never rescaled: ``B = W`` gives
backprop exactly.

Residual nets and batch norm (:mod:`zoo.archs.resnet20`): only the weight layers carry the rule. Batch norm is a plain
``nn.BatchNorm2d`` whose backward pass is its exact, local one (per channel, from its own statistics and scale), as in
BioTorch. At a residual join ``relu(bn2(conv2(h)) + shortcut(x))`` autograd adds the two incoming gradients: what
the block's convolutions send back through their ``B`` and what the weight-free shortcut passes on unchanged (the
identity, or subsampling and zero maps), so no path transports a weight.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zoo.archs.base import LayerKit
from zoo.engine.trainer import GradientTrainer
from zoo.evaluation.alignment import gradient_alignment
from zoo.rules.base import Rule, RuleLayer, memory_format_of

MODES = ("fa", "usf", "brsf", "frsf")
SCALES = ("norm", "none")


def sign_feedback(weight: Tensor, mode: str, r: Tensor | None = None, scale: str = "norm") -> Tensor:
    """The sign-concordant feedback matrix of ``weight`` for ``mode`` ``usf`` | ``brsf`` | ``frsf``.

    ``M = sign(W)`` (uSF) or ``|R| * sign(W)`` (brSF / frSF, ``r`` is ``R``); with ``scale="norm"`` the result is
    ``M * ||W||_F / ||M||_F``, with ``scale="none"`` it is ``M``.
    """
    if mode == "usf":
        m = torch.sign(weight)
    elif mode in ("brsf", "frsf"):
        if r is None:
            raise ValueError(f"mode {mode!r} needs the random magnitudes r")
        m = r.abs() * torch.sign(weight)
    else:
        raise ValueError(f"not a sign-feedback mode: {mode!r}; accepted: 'usf', 'brsf', 'frsf'")
    if scale == "none":
        return m
    if scale != "norm":
        raise ValueError(f"unknown feedback_scale {scale!r}; accepted: {SCALES}")
    norm_m = torch.linalg.vector_norm(m)
    return m * (torch.linalg.vector_norm(weight) / norm_m.clamp_min(torch.finfo(m.dtype).tiny))


class _FeedbackMixin(RuleLayer):
    """Feedback-matrix bookkeeping shared by the linear and the conv layer."""

    mode: str
    feedback_scale: str
    weight: Tensor
    feedback: Tensor
    feedback_r: Tensor

    def _init_feedback(self, mode: str, feedback_scale: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown feedback mode {mode!r}; accepted: {MODES}")
        if feedback_scale not in SCALES:
            raise ValueError(f"unknown feedback_scale {feedback_scale!r}; accepted: {SCALES}")
        self.mode = mode
        self.feedback_scale = feedback_scale
        if mode == "fa":
            fan_in = self.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            self.register_buffer("feedback", torch.empty_like(self.weight).uniform_(-bound, bound))
        elif mode == "frsf":
            self.register_buffer("feedback_r", torch.randn_like(self.weight))

    def feedback_matrix(self) -> Tensor:
        """The matrix ``B`` the backward pass uses now (for brSF: one fresh draw of ``R``)."""
        weight = self.weight.detach()
        if self.mode == "fa":
            return self.feedback
        if self.mode == "usf":
            return sign_feedback(weight, "usf", scale=self.feedback_scale)
        if self.mode == "frsf":
            return sign_feedback(weight, "frsf", self.feedback_r, self.feedback_scale)
        return sign_feedback(weight, "brsf", torch.randn_like(weight), self.feedback_scale)


class _LinearFeedbackFn(torch.autograd.Function):
    """``y = x W^T + b``; backward: ``dx = dy B``, ``dW = dy^T x``, ``db = sum dy``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, layer: "FeedbackLinear") -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[0]:
            grad_x = grad_out.matmul(ctx.layer.feedback_matrix().to(grad_out.dtype))
        if ctx.needs_input_grad[1]:
            grad_w = g2.t().mm(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g2.sum(0)
        return grad_x, grad_w, grad_b, None


class FeedbackLinear(_FeedbackMixin, nn.Linear):
    """An ``nn.Linear`` whose backward pass uses a feedback matrix ``B`` instead of ``W`` (see the module doc).

    ``FeedbackLinear(in_features, out_features, mode="fa")`` is feedback alignment with a fixed random ``B`` in
    the persistent buffer ``feedback`` (shape ``[out_features, in_features]``, like ``weight``). The forward pass
    is exactly ``nn.Linear``'s, so a trained layer works as a plain linear layer.
    """

    def __init__(self, in_features: int, out_features: int, mode: str = "fa", bias: bool = True,
                 feedback_scale: str = "norm") -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._init_feedback(mode, feedback_scale)

    def forward(self, x: Tensor) -> Tensor:
        if not self.rule_active():
            return F.linear(x, self.weight, self.bias)
        return _LinearFeedbackFn.apply(x, self.weight, self.bias, self)

    def extra_repr(self) -> str:
        scale = "" if self.mode == "fa" else f", feedback_scale={self.feedback_scale}"
        return f"{super().extra_repr()}, mode={self.mode}{scale}"


class _ConvFeedbackFn(torch.autograd.Function):
    """``y = conv2d(x, W, b)``; backward: ``dx = conv2d_input(dy, B)``, ``dW`` and ``db`` as usual.

    One call to ``aten.convolution_backward`` with ``B`` in place of ``W`` gives all three: the weight and bias
    gradients depend only on the input and ``dy``, the input gradient is the transposed convolution with ``B``
    (what ``torch.nn.grad.conv2d_input(x.shape, B, dy, ...)`` computes).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, layer: "FeedbackConv2d") -> Tensor:
        ctx.save_for_backward(x)
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        layer: FeedbackConv2d = ctx.layer
        want_x = ctx.needs_input_grad[0]
        want_b = ctx.has_bias and ctx.needs_input_grad[2]
        feedback = layer.feedback_matrix().to(grad_out.dtype) if want_x else layer.weight.detach()
        bias_sizes = [layer.out_channels] if ctx.has_bias else None
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out.contiguous(memory_format=memory_format_of(x)), x, feedback, bias_sizes, list(layer.stride),
            list(layer.padding), list(layer.dilation), False, [0, 0], layer.groups,
            [want_x, ctx.needs_input_grad[1], want_b])
        return grad_x, grad_w, grad_b if want_b else None, None


class FeedbackConv2d(_FeedbackMixin, nn.Conv2d):
    """An ``nn.Conv2d`` whose backward pass sends the error through a feedback kernel ``B`` instead of ``W``.

    Same ``mode`` / ``feedback_scale`` meaning and buffers as :class:`FeedbackLinear` (``B`` has the shape of
    ``weight``); only ``padding_mode="zeros"`` is supported. The forward pass is exactly ``nn.Conv2d``'s.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True, mode: str = "fa",
                 feedback_scale: str = "norm") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        if isinstance(self.padding, str):
            raise ValueError("FeedbackConv2d takes numeric padding")
        self._init_feedback(mode, feedback_scale)

    def forward(self, x: Tensor) -> Tensor:
        if not self.rule_active():
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return _ConvFeedbackFn.apply(x, self.weight, self.bias, self)

    def extra_repr(self) -> str:
        scale = "" if self.mode == "fa" else f", feedback_scale={self.feedback_scale}"
        return f"{super().extra_repr()}, mode={self.mode}{scale}"


# ----------------------------------------------------------------------------------------------------------------
# Rules


def feedback_layers(mode: str, feedback_scale: str = "norm") -> LayerKit:
    """Every fully connected layer a :class:`FeedbackLinear`, every convolution a :class:`FeedbackConv2d`."""
    def linear(in_features: int, out_features: int) -> nn.Module:
        return FeedbackLinear(in_features, out_features, mode=mode, feedback_scale=feedback_scale)

    def conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
             bias: bool = True, in_shape: tuple[int, int, int]) -> nn.Module:
        return FeedbackConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias,
                              mode=mode, feedback_scale=feedback_scale)

    return LayerKit(linear=linear, conv=conv)


def fa_layers(num_classes: int) -> LayerKit:
    """Feedback alignment's layers: fixed random ``B`` (stored in the checkpoint)."""
    return feedback_layers("fa")


def usf_layers(num_classes: int, feedback_scale: str) -> LayerKit:
    """Uniform sign-concordant feedback layers."""
    return feedback_layers("usf", feedback_scale)


def brsf_layers(num_classes: int, feedback_scale: str) -> LayerKit:
    """Batchwise random-magnitude sign-concordant feedback layers."""
    return feedback_layers("brsf", feedback_scale)


def frsf_layers(num_classes: int, feedback_scale: str) -> LayerKit:
    """Fixed random-magnitude sign-concordant feedback layers."""
    return feedback_layers("frsf", feedback_scale)


LILLICRAP = ("Lillicrap, Cownden, Tweed & Akerman, Random synaptic feedback weights support error "
             "backpropagation for deep learning (Nature Communications 2016)")
LIAO = ("Liao, Leibo & Poggio, How important is weight symmetry in backpropagation? (AAAI 2016)")
MOSKOVITZ = ("Moskovitz, Litwin-Kumar & Abbott, Feedback alignment in deep convolutional networks "
             "(arXiv:1812.06488, 2018)")
SIGN_OPTIONS = {"feedback_scale": "norm"}

RULES = (
    Rule(name="fa", learning_rule="feedback_alignment",
         description="trained with feedback alignment: fixed random feedback matrices (and kernels) replace W^T in "
                     "the backward pass (stored in the checkpoint).",
         trainer=GradientTrainer, paper=LILLICRAP, layers=fa_layers, alignment=gradient_alignment),
    Rule(name="usf", learning_rule="sign_symmetry_usf",
         description="trained with uniform sign-concordant feedback: B = sign(W), norm-matched to W, in the "
                     "backward pass.",
         trainer=GradientTrainer, paper=LIAO, layers=usf_layers, options=SIGN_OPTIONS, alignment=gradient_alignment),
    Rule(name="brsf", learning_rule="sign_symmetry_brsf",
         description="trained with batchwise random-magnitude sign-concordant feedback: B = |R| * sign(W), R redrawn "
                     "every batch, norm-matched to W.",
         trainer=GradientTrainer, paper=MOSKOVITZ, layers=brsf_layers, options=SIGN_OPTIONS,
         alignment=gradient_alignment),
    Rule(name="frsf", learning_rule="sign_symmetry_frsf",
         description="trained with fixed random-magnitude sign-concordant feedback: B = |R| * sign(W) with R fixed "
                     "(stored in the checkpoint), norm-matched to W.",
         trainer=GradientTrainer, paper=MOSKOVITZ, layers=frsf_layers, options=SIGN_OPTIONS,
         alignment=gradient_alignment),
)
