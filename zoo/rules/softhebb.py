"""SoftHebb: soft winner-take-all Hebbian convolutions learned without labels and without feedback, then a linear
read-out on the frozen features (family ``softhebb_cnn``).

Journé, Garcia Rodriguez, Guo & Moraitis, *Hebbian deep learning without feedback* (ICLR 2023, arXiv:2209.11883);
the single-layer rule is Moraitis, Toichkin, Journé, Chua & Guo, *SoftHebb: Bayesian inference in unsupervised
Hebbian soft winner-take-all networks* (Neuromorphic Computing and Engineering 2022). Checked against the authors'
code (github.com/NeuromorphicComputing/SoftHebb: ``demo.py``, ``presets.json``, ``train.py``).

Network (each block is the paper's; ``model.features(x)`` is the read-out's input)::

    image [N, C, H, W] in [0, 1] -> per-channel dataset standardisation
      -> [BN without affine -> conv k x k (no bias, reflect padding) -> triangle -> pool] per block
      -> flatten -> dropout -> linear read-out (logits)

* BN without affine, ``(h - mean) / sqrt(var + 1e-5)`` per channel, always with its stored statistics (so training
  and eval mode compute the same function); the Hebbian step standardises its batch with the batch's own statistics
  and folds them into the stored ones (momentum 0.1, unbiased variance), as ``nn.BatchNorm2d`` does in training mode;
* triangle: ``relu(u - mean_channels(u)) ** power`` (the mean over the channels at each position);
* pool ``"max"``: 4 x 4 max-pool, stride 2, padding 1 (halves the size); ``"avg"``: 2 x 2 average pool, stride 2.

The rule, per block, on the standardised input ``x`` (``x_p``: the patch under output position ``p``; sums over the
batch and every position)::

    u_k   = w_k . x_p                                        (the convolution)
    y_k   = softmax_k(t_invert * u)                          (soft winner-take-all over the channels, temperature
                                                              1 / t_invert)
    y_k   = -y_k for every k but the winner argmax_k u_k      (anti-Hebbian non-winners: the deep version)
    dw_k  = sum_{batch, p} y_k (x_p - u_k w_k)                (SoftHebb plasticity, Oja-like)
    w_k  += hebbian_lr * |‖w_k‖ - 1| ** power_lr * dw_k / max|dw|   (max over the whole layer)

The last line is the authors' weight-norm-dependent learning rate (``WeightNormDependentLR`` with ``power_lr`` 0.5 in
``demo.py``) after their normalisation of the update by its largest magnitude. The rule's fixed point has unit-norm
kernels: at equilibrium ``E[y_k x_p] = E[y_k u_k] w_k``; the dot product with ``w_k`` gives
``E[y_k u_k] = E[y_k u_k] ‖w_k‖²``, so ``‖w_k‖ = 1`` wherever ``E[y_k u_k] != 0``, and the rate vanishes there.
Kernels start normal with norm ≈ ``init_radius`` (25, the authors' ``radius``: ``25 / sqrt(fan_in) * N(0, 1)``)
and shrink to 1 while they learn. ``anti_hebbian=False`` gives the original single-layer SoftHebb (every ``y_k``
positive).

Training (:class:`SoftHebbTrainer`): ``hebbian_epochs`` unsupervised epochs per block, block after block (``layer_order
"greedy"``, as the paper reports), or all blocks at once in ``hebbian_epochs`` epochs (``"simultaneous"``, the
authors' ``demo.py``; their README finds it no worse and shorter). Each fit batch is split into micro-batches of
``hebbian_batch`` images (10 in the paper), one update each. The Hebbian step takes no labels. The remaining epochs
train the read-out with gradients (Adam by default) on the frozen features, with dropout. Nothing else is state:
the model's weights and statistics and the read-out's optimiser make resuming exact. Starting from a checkpoint
(``--init``) runs the same schedule from its weights: the rule continues where it stopped (its rate shrinks as the
kernels approach norm 1), then the read-out continues from its own weights.

There is no gradient to compare the update with (no loss is descended): the family has no alignment angles.
"""
from __future__ import annotations

import warnings
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.grad import conv2d_weight

from zoo.archs.image_input import ImageInput
from zoo.engine.distributed import SINGLE, Collective, ShardedDropout
from zoo.engine.trainer import GradientTrainer, Trainer
from zoo.rules.base import Rule, Variant

PAPER = ("Journé, Garcia Rodriguez, Guo & Moraitis, Hebbian deep learning without feedback (ICLR 2023), "
         "arXiv:2209.11883")
SHALLOW = ("Moraitis, Toichkin, Journé, Chua & Guo, SoftHebb: Bayesian inference in unsupervised Hebbian soft "
           "winner-take-all networks (Neuromorphic Computing and Engineering 2022)")
POOLS = ("max", "avg")
LAYER_ORDERS = ("greedy", "simultaneous")
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
RATE_FLOOR = 1e-10  # demo.py's floor under |‖w‖ - 1| (keeps the rate's power defined at the fixed point)


# ----------------------------------------------------------------------------------------------------- layers

class ChannelStandardize(nn.Module):
    """Batch norm without affine parameters whose forward always uses its stored statistics (``running_mean``,
    ``running_var``); :meth:`learn` standardises a training batch with its own statistics and folds them in."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.running_mean: Tensor
        self.running_var: Tensor
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, h: Tensor) -> Tensor:
        return (h - self.running_mean.view(1, -1, 1, 1)) / (self.running_var.view(1, -1, 1, 1) + BN_EPS).sqrt()

    def learn(self, h: Tensor, collective: Collective = SINGLE) -> Tensor:
        """``h`` standardised with its batch statistics (over the processes of a data-parallel run), which update
        the stored ones like ``nn.BatchNorm2d`` in training mode."""
        with torch.no_grad():
            sums = torch.stack([h.sum((0, 2, 3)), (h * h).sum((0, 2, 3)),
                                h.new_full((h.shape[1],), float(h.numel() // h.shape[1]))])
            collective.sum_(sums)
            count = sums[2]
            mean = sums[0] / count
            var = (sums[1] / count - mean * mean).clamp_min(0.0)
            self.running_mean.lerp_(mean, BN_MOMENTUM)
            self.running_var.lerp_(var * count / (count - 1).clamp_min(1.0), BN_MOMENTUM)
        return (h - mean.view(1, -1, 1, 1)) / (var.view(1, -1, 1, 1) + BN_EPS).sqrt()


class SoftHebbConv2d(nn.Module):
    """A bias-free ``kernel_size`` x ``kernel_size`` convolution with reflect padding ``(kernel_size - 1) // 2``
    (same size for odd kernels) whose weight only the SoftHebb rule changes (``requires_grad=False``: saved and
    counted, never touched by an optimiser). Kernels start ``init_radius / sqrt(fan_in) * N(0, 1)`` (norm ≈
    ``init_radius``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, init_radius: float) -> None:
        super().__init__()
        if kernel_size < 1 or out_channels < 2 or init_radius <= 0:
            raise ValueError(f"a SoftHebb convolution needs kernel_size >= 1, at least 2 competing channels and "
                             f"init_radius > 0; got kernel_size={kernel_size}, channels={out_channels}, "
                             f"init_radius={init_radius}")
        self.padding = (kernel_size - 1) // 2
        fan_in = in_channels * kernel_size * kernel_size
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size) * (init_radius / fan_in ** 0.5)
        self.weight = nn.Parameter(weight, requires_grad=False)

    def pad(self, x: Tensor) -> Tensor:
        """``x`` with the reflect padding of this convolution."""
        return F.pad(x, (self.padding,) * 4, mode="reflect") if self.padding else x

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(self.pad(x), self.weight)

    def extra_repr(self) -> str:
        out, inp, k, _ = self.weight.shape
        return f"{inp}, {out}, kernel_size={k}, padding={self.padding} (reflect), local rule (no gradients)"


def make_pool(kind: str) -> nn.Module:
    """The paper's pools: ``"max"`` 4 x 4 stride 2 padding 1, ``"avg"`` 2 x 2 stride 2 (both halve the size)."""
    if kind == "max":
        return nn.MaxPool2d(4, stride=2, padding=1)
    if kind == "avg":
        return nn.AvgPool2d(2, stride=2)
    raise ValueError(f"unknown pool {kind!r}; accepted: {POOLS}")


class SoftHebbBlock(nn.Module):
    """``pool(triangle(conv(standardise(h))))`` with the triangle ``relu(u - mean over channels of u) ** power``;
    ``conv`` learns by the SoftHebb rule."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, power: float, pool: str,
                 init_radius: float) -> None:
        super().__init__()
        if power <= 0:
            raise ValueError(f"triangle power must be positive, got {power}")
        self.norm = ChannelStandardize(in_channels)
        self.conv = SoftHebbConv2d(in_channels, out_channels, kernel_size, init_radius)
        self.power = float(power)
        self.pool = make_pool(pool)

    def activate(self, u: Tensor) -> Tensor:
        """The block's output for the convolution's output ``u``. A max-pool is taken before ``relu(.) ** power``:
        the maximum commutes with that non-decreasing function, and a quarter of the powers remain (measured: the
        powers were a quarter of a forward pass)."""
        centred = u - u.mean(1, keepdim=True)
        if isinstance(self.pool, nn.MaxPool2d):
            return self.triangle(self.pool(centred))
        return self.pool(self.triangle(centred))

    def triangle(self, centred: Tensor) -> Tensor:
        """``relu(centred) ** power``."""
        h = torch.relu(centred)
        return h if self.power == 1.0 else h.pow(self.power)

    def forward(self, h: Tensor) -> Tensor:
        return self.activate(self.conv(self.norm(h)))

    def extra_repr(self) -> str:
        return f"triangle power={self.power}"


class SoftHebbNet(nn.Module):
    """SoftHebb blocks and a linear read-out; see the module docstring. ``channels``, ``kernels``, ``powers`` and
    ``pools`` give one value per block."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float], *,
                 channels: Sequence[int], kernels: Sequence[int], powers: Sequence[float], pools: Sequence[str],
                 dropout: float, init_radius: float) -> None:
        super().__init__()
        lengths = {len(channels), len(kernels), len(powers), len(pools)}
        if len(lengths) != 1 or not channels:
            raise ValueError(f"channels, kernels, powers and pools need one value per block (at least one block); got "
                             f"channels={list(channels)}, kernels={list(kernels)}, powers={list(powers)}, "
                             f"pools={list(pools)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input = ImageInput(in_shape, mean, std)
        widths = [self.input.in_shape[0], *(int(c) for c in channels)]
        self.blocks = nn.ModuleList(
            SoftHebbBlock(a, b, int(k), float(p), pool, float(init_radius))
            for a, b, k, p, pool in zip(widths[:-1], widths[1:], kernels, powers, pools))
        self.dropout = ShardedDropout(dropout)
        self.readout = nn.Linear(self.feature_size(), num_classes)

    def feature_size(self) -> int:
        """Length of the flattened features of one image (an input too small for the blocks raises)."""
        try:
            with torch.no_grad():
                h = torch.zeros(1, *self.input.in_shape)
                for block in self.blocks:
                    h = block(h)
        except RuntimeError as exc:
            raise ValueError(f"input {list(self.input.in_shape)} is too small for {len(self.blocks)} SoftHebb blocks "
                             f"(each halves the size; reflect padding needs more pixels than the padding): "
                             f"{exc}") from None
        return int(h.numel())

    def block(self, index: int) -> SoftHebbBlock:
        """The ``index``-th block."""
        block = self.blocks[index]
        assert isinstance(block, SoftHebbBlock)
        return block

    def image(self, x: Tensor) -> Tensor:
        """Float images ``x`` standardised per channel, in channels-last layout: the blocks' pooling and reductions
        over the channels are several times faster in it on the CPU (max-pool 11x, measured), same values."""
        return self.input(x).contiguous(memory_format=torch.channels_last)

    def features(self, x: Tensor) -> Tensor:
        """The flattened output of the last block, ``[N, feature_size]`` (the read-out's input)."""
        h = self.image(x)
        for block in self.blocks:
            h = block(h)
        return h.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for float images ``[N, C, H, W]`` in ``[0, 1]``."""
        return self.readout(self.dropout(self.features(x)))


# --------------------------------------------------------------------------------------------------- the rule

def soft_wta(u: Tensor, t_invert: float, anti_hebbian: bool = True) -> Tensor:
    """Post-synaptic activations ``y`` of pre-activations ``u`` ``[B, K, H, W]``: the softmax over the ``K``
    channels of ``t_invert * u`` at each position, negated for every channel but the winner when ``anti_hebbian``."""
    y = torch.softmax(t_invert * u.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)  # contiguous if channels-last
    if not anti_hebbian:
        return y
    winner = torch.zeros_like(y, dtype=torch.bool).scatter_(1, u.argmax(1, keepdim=True), True)
    return torch.where(winner, y, -y)


def softhebb_delta(weight: Tensor, x: Tensor, u: Tensor, y: Tensor) -> Tensor:
    """``dw_k = sum_{batch, p} y_k (x_p - u_k w_k)`` for the convolution of the (padded) input ``x`` with ``weight``
    ``[K, C, k, k]``, whose output is ``u``; ``sum y_k x_p`` is the convolution's weight gradient for output
    gradient ``y``."""
    yx = conv2d_weight(x, list(weight.shape), y)
    yu = (y * u).sum((0, 2, 3))
    return yx - yu.view(-1, 1, 1, 1) * weight


def kernel_norms(weight: Tensor) -> Tensor:
    """The L2 norm of each output channel's kernel, ``[K]``."""
    return weight.flatten(1).norm(dim=1)


def softhebb_update(weight: Tensor, x: Tensor, lr: float, t_invert: float, *, power_lr: float = 0.5,
                    anti_hebbian: bool = True, collective: Collective = SINGLE) -> Tensor:
    """One in-place SoftHebb update of ``weight`` ``[K, C, k, k]`` on the (standardised, padded) input ``x``
    ``[B, C, H, W]``; returns the convolution's output ``u`` computed before the update.

    ``w_k += lr * |‖w_k‖ - 1| ** power_lr * dw_k / max|dw|`` with ``dw`` from :func:`softhebb_delta`; in a
    data-parallel run the processes sum their ``dw`` first (the update of the global batch).
    """
    with torch.no_grad():
        u = F.conv2d(x, weight)
        delta = collective.sum_(softhebb_delta(weight, x, u, soft_wta(u, t_invert, anti_hebbian)))
        delta.div_(delta.abs().amax().clamp_min(1e-30))
        rate = lr * ((kernel_norms(weight) - 1.0).abs() + RATE_FLOOR).pow(power_lr)
        weight.add_(rate.view(-1, 1, 1, 1) * delta)
    return u


# ----------------------------------------------------------------------------------------------------- training

def per_block(name: str, value: Any, blocks: int) -> list[float]:
    """A rule option given as one number or one number per block, as ``blocks`` floats."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = values * blocks
    if len(values) != blocks or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a number or a list of {blocks} numbers (one per block), got {value!r}")
    return [float(v) for v in values]


class SoftHebbTrainer(Trainer):
    """Unsupervised SoftHebb epochs (no labels), then the linear read-out with gradients on the frozen features.

    Options: ``hebbian_epochs`` (per block when ``layer_order`` is ``"greedy"``, for all blocks together when it is
    ``"simultaneous"``), ``hebbian_batch`` (images per Hebbian update), ``hebbian_lr`` and ``t_invert`` (a number or
    one per block), ``power_lr``, ``anti_hebbian``, and the read-out's ``head_optimizer``, ``head_lr``,
    ``head_schedule`` (over the read-out's epochs; see :mod:`zoo.engine.options`), ``head_weight_decay``,
    ``head_momentum``.
    A Hebbian step returns the mean ``|‖w_k‖ - 1|`` of the kernels it trained (0 at the fixed point); a read-out
    step its cross-entropy.
    """

    state_attrs = ("head_trainer",)
    options: ClassVar[Mapping[str, Any]] = {
        "hebbian_epochs": 1, "layer_order": "greedy", "hebbian_batch": 10, "hebbian_lr": [0.08, 0.005, 0.01],
        "t_invert": [1.0, 0.65, 0.25], "power_lr": 0.5, "anti_hebbian": True, "head_optimizer": "adam",
        "head_lr": 1e-3, "head_schedule": "cosine", "head_weight_decay": 0.0, "head_momentum": 0.9}

    def __init__(self, model: nn.Module, config: Mapping[str, Any], steps_per_epoch: int, epochs: int, *,
                 collective: Collective = SINGLE) -> None:
        super().__init__(model, config, steps_per_epoch, epochs, collective=collective)
        if not isinstance(model, SoftHebbNet):
            raise TypeError(f"{type(self).__name__} trains SoftHebbNet models, not {type(model).__name__}")
        self.net = model
        config = self.config
        blocks = len(model.blocks)
        self.layer_order = str(config["layer_order"])
        if self.layer_order not in LAYER_ORDERS:
            raise ValueError(f"unknown layer_order {self.layer_order!r}; accepted: {LAYER_ORDERS}")
        self.block_epochs = int(config["hebbian_epochs"])
        self.hebbian_batch = int(config["hebbian_batch"])
        if self.block_epochs < 1 or self.hebbian_batch < 1:
            raise ValueError(f"hebbian_epochs and hebbian_batch must be at least 1 (the features are learned in the "
                             f"Hebbian epochs), got {config['hebbian_epochs']} and {config['hebbian_batch']}")
        self.lrs = per_block("hebbian_lr", config["hebbian_lr"], blocks)
        self.t_inverts = per_block("t_invert", config["t_invert"], blocks)
        self.power_lr = float(config["power_lr"])
        self.anti_hebbian = bool(config["anti_hebbian"])
        self.hebbian_epochs = self.block_epochs * (blocks if self.layer_order == "greedy" else 1)
        head_epochs = epochs - self.hebbian_epochs
        if head_epochs <= 0:
            warnings.warn(f"{type(self).__name__}: all {epochs} epochs are Hebbian ({self.hebbian_epochs} needed "
                          f"for {blocks} blocks): the read-out is not trained in this run", stacklevel=2)
        head_config = {"optimizer": config["head_optimizer"], "lr": config["head_lr"],
                       "schedule": config["head_schedule"], "weight_decay": config["head_weight_decay"],
                       "momentum": config["head_momentum"]}
        self.head_trainer = GradientTrainer(model, head_config, self.steps_per_epoch, max(1, head_epochs),
                                            collective=collective)

    def learning_blocks(self) -> range:
        """Indices of the blocks the next step trains (empty in the read-out epochs)."""
        epoch = self.epoch()
        if epoch >= self.hebbian_epochs:
            return range(0)
        if self.layer_order == "simultaneous":
            return range(len(self.net.blocks))
        block = epoch // self.block_epochs
        return range(block, block + 1)

    def hebbian_step(self, x: Tensor) -> float:
        """SoftHebb updates of the learning blocks on float images ``x``, one per micro-batch of ``hebbian_batch``
        (the blocks after the last learning one are not run); returns their kernels' mean ``|‖w_k‖ - 1|``."""
        learning = self.learning_blocks()
        for chunk in x.split(self.hebbian_batch):
            h = self.net.image(chunk)
            for index in range(learning.stop):
                block = self.net.block(index)
                if index in learning:
                    u = softhebb_update(block.conv.weight.data, block.conv.pad(block.norm.learn(h, self.collective)),
                                        self.lrs[index], self.t_inverts[index], power_lr=self.power_lr,
                                        anti_hebbian=self.anti_hebbian, collective=self.collective)
                    h = block.activate(u)
                else:
                    h = block(h)
        deviations = torch.cat([kernel_norms(self.net.block(i).conv.weight) - 1.0 for i in learning])
        return float(deviations.abs().mean())

    def step(self, x: Tensor, y: Tensor) -> float:
        if self.learning_blocks():
            with torch.no_grad():
                loss = self.hebbian_step(x)
        else:
            loss = self.head_trainer.step(x, y)
        self.step_count += 1
        return loss


# ----------------------------------------------------------------------------------------------------- the family

# The paper's 3-block CIFAR-10 net (presets.json "4SoftHebbCnnCIFAR", demo.py); recipes choose CPU-sized widths.
SOFTHEBB_CNN = {"channels": [96, 384, 1536], "kernels": [5, 3, 3], "powers": [0.7, 1.4, 1.0],
                "pools": ["max", "max", "avg"], "dropout": 0.5, "init_radius": 25.0}

RULES = (
    Rule(name="softhebb", learning_rule="softhebb",
         description="trained with SoftHebb: soft winner-take-all Hebbian convolutions learned without labels and "
                     "without feedback, block by block, then a linear read-out trained with labels.",
         trainer=SoftHebbTrainer, paper=PAPER + "; " + SHALLOW, variants={"cnn": Variant(
             summary="SoftHebb conv net: blocks of batch norm (no affine), a soft winner-take-all Hebbian convolution, "
                     "a triangle activation and pooling, learned without labels or feedback, then a linear read-out "
                     "with dropout trained by cross-entropy on the frozen features.",
             build=SoftHebbNet, options=SOFTHEBB_CNN)}),
)
