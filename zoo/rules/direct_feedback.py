"""Direct feedback alignment (DFA) and direct random target projection (DRTP): every hidden layer receives the
output error (DFA) or the one-hot target (DRTP) through its own fixed random matrix, not backpropagated signals.

The rule lives in the layers. A :class:`DirectFeedbackLinear` / :class:`DirectFeedbackConv2d` computes the plain
``nn.Linear`` / ``nn.Conv2d`` forward. Its backward pass computes the weight and bias gradients as usual from the
error ``dy`` its output receives, but the gradient it sends to its *input* activation ``h`` is a direct projection,
whatever the layers above it did:

* DFA (Noekland 2016):   ``dL/dh ~ e B``            with ``e = dL/dlogits`` (the output error of this batch),
* DRTP (Frenkel 2021):   ``dL/dh ~ -(t / N) B``     with ``t`` the one-hot target and ``N`` the batch size
  (scaled like ``e``, which carries the ``1/N`` of the batch-mean loss).

``B`` is the fixed persistent buffer ``feedback`` of shape ``[num_classes, prod(input shape)]`` (saved in the
checkpoint, restored on load). Autograd then carries ``e B`` through the activation (and pooling) between ``h``
and the layer below, so a hidden layer ``l`` is trained with ``delta_l = (e B_l) * f'(a_l)``: the DFA update. The
projection onto the network's input (the first layer's ``B``) is never used, since images need no gradient.

The layers of one network share an :class:`ErrorSignal`. The network's output layer is the last of its layers in
the forward pass; its backward runs first and records ``e`` (its own ``dy``) for the layers below. The output
layer is trained with its true error; its input gradient is ``e B`` (DFA) or ``-(t/N) B`` (DRTP) like every layer.
DFA therefore trains with the plain :class:`~zoo.engine.trainer.GradientTrainer`; DRTP's :class:`DRTPTrainer` only
sets the target before the forward pass. Inference is a plain forward pass; as for feedback alignment the rule is
active in training mode only (:meth:`zoo.rules.base.RuleLayer.rule_active`), so an eval-mode model has true input
gradients.

Convolutions project the error in one of two ways, the rule's option ``projection`` (recorded in ``arch``):

* ``"dense"`` (the default, and every DFA checkpoint published before the option existed): onto the convolution's
  whole input ``[N, C, H, W]`` through a dense ``[num_classes, C*H*W]`` matrix, a separate random weight for every
  position. It is DFA as Noekland defines it for any layer.
* ``"kernel"``: BioTorch's convolutional DFA (``biotorch/layers/dfa/conv.py``). The error is broadcast over the
  convolution's output positions, ``[N, num_classes, H', W']``, and sent to its input through the transposed
  convolution with a fixed random ``[num_classes, C, k, k]`` kernel (the layer's own stride and padding). Every
  position of a channel so receives the same signal (less at the borders, which fewer kernel taps reach), and the
  matrix is tiny. Its entries are drawn uniformly from ``+-1/sqrt(num_classes*k*k)``, so that the ``k*k`` taps
  that meet at a position sum to the spread of one dense entry (``+-1/sqrt(num_classes)``).

Fully connected layers always project through a dense ``[num_classes, in_features]`` matrix.

Residual nets (:mod:`zoo.archs.resnet20`): DFA projects ``e`` onto the input of every convolution, i.e. onto the
input of each block's two convolutions (and of the stem and head), never onto the block outputs themselves. The
gradient reaching a block's input is the sum autograd forms at the residual join: the projection ``e B`` its first
convolution sends, plus what the weight-free shortcut passes on from the block's output, which itself is the next
block's projection plus its shortcut's. A block input therefore receives the projections of all blocks above it
(through the identity shortcuts and the subsampling ones), each through a different fixed matrix, and the head's;
no weight is transported. Batch norm keeps its exact local backward pass. Each convolution learns from what reaches
its output: a block's first convolution from the projection its second one sent, through the ReLU and batch norm
between them; the second from the sum at the block's output, through the output ReLU and its batch norm.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zoo.archs.base import LayerKit
from zoo.engine.trainer import GradientTrainer
from zoo.evaluation.alignment import compare, gradient_alignment, gradient_rule_update
from zoo.rules.base import Rule, RuleLayer, give_labels, memory_format_of

MODES = ("dfa", "drtp")
PROJECTIONS = ("dense", "kernel")


class ErrorSignal:
    """What the direct-feedback layers of one network share during a training step (not saved: it is transient).

    ``output_layer`` is the last layer run in the forward pass; ``error`` is ``dL/dlogits`` recorded by the output
    layer's backward (DFA); ``target`` is the one-hot target of the batch, set by the trainer (DRTP).
    """

    def __init__(self) -> None:
        self.output_layer: nn.Module | None = None
        self.error: Tensor | None = None
        self.target: Tensor | None = None

    def __repr__(self) -> str:
        return "ErrorSignal()"


class _DirectFeedbackMixin(RuleLayer):
    """Feedback buffer and the input-gradient projection shared by the linear and the conv layer."""

    weight: Tensor
    feedback: Tensor

    def _init_direct(self, feedback_shape: tuple[int, ...], num_classes: int, signal: ErrorSignal, mode: str) -> None:
        """The fixed ``feedback`` ``[num_classes, *feedback_shape]``, uniform in ``+-1/sqrt(num_classes * taps)``
        where ``taps`` is the size of the trailing kernel dimensions (1 for a dense matrix)."""
        if mode not in MODES:
            raise ValueError(f"unknown direct feedback mode {mode!r}; accepted: {MODES}")
        self.mode = mode
        self.num_classes = int(num_classes)
        self.signal = signal
        taps = math.prod(feedback_shape[1:])
        bound = 1.0 / math.sqrt(self.num_classes * taps)
        self.register_buffer("feedback", torch.empty(self.num_classes, *feedback_shape).uniform_(-bound, bound))

    def receive_labels(self, labels: Tensor | None) -> None:
        """DRTP's layers project the one-hot target of ``labels`` (shared through the network's signal)."""
        self.signal.target = None if labels is None else F.one_hot(labels, self.num_classes).to(self.weight.dtype)

    def _mark_forward(self) -> None:
        self.signal.output_layer = self
        self.signal.error = None

    def _record_error(self, grad_out: Tensor) -> None:
        if self.signal.output_layer is self:
            error = grad_out.reshape(grad_out.shape[0], -1)
            if error.shape[1] != self.num_classes:
                raise RuntimeError(f"the network's output layer has {error.shape[1]} outputs, but its direct "
                                   f"feedback is built for {self.num_classes} classes")
            self.signal.error = error

    def _source(self, dtype: torch.dtype) -> Tensor:
        """What is projected: the output error ``e`` (DFA) or ``-t/N`` (DRTP), ``[N, num_classes]``."""
        if self.mode == "dfa":
            source = self.signal.error
            if source is None:
                raise RuntimeError("direct feedback alignment: no output error recorded in this backward pass; "
                                   "backpropagate a loss of the network's output (logits)")
        else:
            target = self.signal.target
            if target is None:
                raise RuntimeError("DRTP: no target set; call zoo.rules.base.give_labels(model, labels) before the "
                                   "forward pass (DRTPTrainer does)")
            source = -target / target.shape[0]
        return source.to(dtype)

    def _input_gradient(self, input_shape: torch.Size, dtype: torch.dtype) -> Tensor:
        """The dense projection ``source B`` onto the layer's input."""
        return self._source(dtype).mm(self.feedback.flatten(1).to(dtype)).reshape(input_shape)


class _LinearDirectFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, layer: "DirectFeedbackLinear") -> Tensor:
        ctx.save_for_backward(x)
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        layer: DirectFeedbackLinear = ctx.layer
        layer._record_error(grad_out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = layer._input_gradient(x.shape, grad_out.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = grad_out.t().mm(x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(0)
        return grad_x, grad_w, grad_b, None


class DirectFeedbackLinear(_DirectFeedbackMixin, nn.Linear):
    """An ``nn.Linear`` on ``[N, in_features]`` inputs whose input gradient is ``e B`` (DFA) or ``-(t/N) B``
    (DRTP); ``B`` is the buffer ``feedback`` ``[num_classes, in_features]``. Forward is ``nn.Linear``'s."""

    def __init__(self, in_features: int, out_features: int, num_classes: int, signal: ErrorSignal,
                 mode: str = "dfa", bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._init_direct((in_features,), num_classes, signal, mode)

    def forward(self, x: Tensor) -> Tensor:
        if not self.rule_active():
            return F.linear(x, self.weight, self.bias)
        if x.dim() != 2:
            raise ValueError(f"DirectFeedbackLinear takes [N, in_features] inputs, got shape {list(x.shape)}")
        self._mark_forward()
        return _LinearDirectFn.apply(x, self.weight, self.bias, self)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode}, num_classes={self.num_classes}"


class _ConvDirectFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, layer: "DirectFeedbackConv2d") -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        layer: DirectFeedbackConv2d = ctx.layer
        layer._record_error(grad_out)
        grad_x = grad_w = grad_b = None
        want_b = ctx.has_bias and ctx.needs_input_grad[2]
        if ctx.needs_input_grad[1] or want_b:
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_out.contiguous(memory_format=memory_format_of(x)), x, weight,
                [layer.out_channels] if ctx.has_bias else None, list(layer.stride), list(layer.padding),
                list(layer.dilation), False, [0, 0], layer.groups, [False, ctx.needs_input_grad[1], want_b])
        if ctx.needs_input_grad[0]:
            grad_x = layer._conv_input_gradient(x, grad_out)
        return grad_x, grad_w if ctx.needs_input_grad[1] else None, grad_b if want_b else None, None


class DirectFeedbackConv2d(_DirectFeedbackMixin, nn.Conv2d):
    """An ``nn.Conv2d`` on inputs of shape ``in_shape`` ``(C, H, W)`` whose input gradient is the projected error
    ``e`` (DFA) or ``-t/N`` (DRTP). ``projection="dense"``: ``e B`` with the buffer ``feedback``
    ``[num_classes, C*H*W]``; ``"kernel"``: ``e`` broadcast over the output positions and sent back through the
    transposed convolution with ``feedback`` ``[num_classes, C, k, k]``. Forward is ``nn.Conv2d``'s."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *,
                 in_shape: Sequence[int], num_classes: int, signal: ErrorSignal, mode: str = "dfa",
                 stride: int = 1, padding: int = 0, bias: bool = True, projection: str = "dense") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.in_shape = tuple(int(d) for d in in_shape)
        if len(self.in_shape) != 3 or self.in_shape[0] != in_channels:
            raise ValueError(f"in_shape must be (C, H, W) with C = in_channels = {in_channels}, got {in_shape}")
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown direct feedback projection {projection!r}; accepted: {PROJECTIONS}")
        self.projection = projection
        shape = (math.prod(self.in_shape),) if projection == "dense" else (in_channels, *self.kernel_size)
        self._init_direct(shape, num_classes, signal, mode)

    def _conv_input_gradient(self, x: Tensor, grad_out: Tensor) -> Tensor:
        if self.projection == "dense":
            return self._input_gradient(x.shape, grad_out.dtype)
        source = self._source(grad_out.dtype)
        layout = memory_format_of(x)
        spread = source[:, :, None, None].expand(-1, -1, *grad_out.shape[2:]).contiguous(memory_format=layout)
        grad_x, _, _ = torch.ops.aten.convolution_backward(
            spread, x, self.feedback.to(grad_out.dtype).contiguous(memory_format=layout), None, list(self.stride),
            list(self.padding), list(self.dilation), False, [0, 0], 1, [True, False, False])
        return grad_x

    def forward(self, x: Tensor) -> Tensor:
        if not self.rule_active():
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"DirectFeedbackConv2d was built for inputs {list(self.in_shape)}, got {list(x.shape)}")
        self._mark_forward()
        return _ConvDirectFn.apply(x, self.weight, self.bias, self)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, in_shape={self.in_shape}, mode={self.mode}, num_classes={self.num_classes}, "
                f"projection={self.projection}")


class DRTPTrainer(GradientTrainer):
    """:class:`~zoo.engine.trainer.GradientTrainer` that first hands the batch's one-hot target to the DRTP layers."""

    def step(self, x: Tensor, y: Tensor) -> float:
        give_labels(self.model, y)
        try:
            return super().step(x, y)
        finally:
            give_labels(self.model, None)


def drtp_rule_update(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """DRTP's update direction on a batch (its layers' weight gradients of the cross-entropy, negated)."""
    give_labels(model, y)
    try:
        return gradient_rule_update(model, x, y)
    finally:
        give_labels(model, None)


def drtp_alignment(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """``Family.alignment`` for DRTP: angle between its update and backprop's, per layer."""
    return compare(model, x, y, drtp_rule_update)


# ----------------------------------------------------------------------------------------------------------------
# Rules


def direct_layers(mode: str, num_classes: int, projection: str = "dense") -> LayerKit:
    """Layers of one network sharing one :class:`ErrorSignal`: every fully connected layer a
    :class:`DirectFeedbackLinear`, every convolution a :class:`DirectFeedbackConv2d` with ``projection``."""
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown direct feedback projection {projection!r}; accepted: {PROJECTIONS}")
    signal = ErrorSignal()

    def linear(in_features: int, out_features: int) -> nn.Module:
        return DirectFeedbackLinear(in_features, out_features, num_classes, signal, mode)

    def conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
             bias: bool = True, in_shape: tuple[int, int, int]) -> nn.Module:
        return DirectFeedbackConv2d(in_channels, out_channels, kernel_size, in_shape=in_shape,
                                    num_classes=num_classes, signal=signal, mode=mode, stride=stride, padding=padding,
                                    bias=bias, projection=projection)

    return LayerKit(linear=linear, conv=conv)


def dfa_layers(num_classes: int, projection: str = "dense") -> LayerKit:
    """Direct feedback alignment's layers, projecting onto convolutions by ``projection`` (``PROJECTIONS``)."""
    return direct_layers("dfa", num_classes, projection)


def drtp_layers(num_classes: int) -> LayerKit:
    """Direct random target projection's layers."""
    return direct_layers("drtp", num_classes)


NOEKLAND = "Noekland, Direct feedback alignment provides learning in deep neural networks (NeurIPS 2016)"
FRENKEL = ("Frenkel, Lefebvre & Bol, Learning without feedback: fixed random learning signals allow for "
           "feedforward training of deep neural networks (Frontiers in Neuroscience 2021)")

RULES = (
    Rule(name="dfa", learning_rule="direct_feedback_alignment",
         description="trained with direct feedback alignment: the output error is sent to every hidden layer "
                     "through its own fixed random matrix (stored in the checkpoint).",
         trainer=GradientTrainer, paper=NOEKLAND, layers=dfa_layers, options={"projection": "dense"},
         alignment=gradient_alignment),
    Rule(name="drtp", learning_rule="direct_random_target_projection",
         description="trained with direct random target projection: each hidden layer learns from the one-hot "
                     "target through a fixed random matrix, without any error feedback; the output layer from its "
                     "own error.",
         trainer=DRTPTrainer, paper=FRENKEL, layers=drtp_layers, architectures=("mlp",),
         arch_defaults={"mlp": {"activation": "tanh"}}, alignment=drtp_alignment),
)
