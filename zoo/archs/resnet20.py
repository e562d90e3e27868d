"""The CIFAR ResNet-20 of He, Zhang, Ren & Sun (2016, section 4.2): the network behind BioTorch's ResNet-20 figures.

A 3x3 convolution with 16 maps, then three stages of three basic blocks with 16, 32 and 64 maps (the first block of
stages 2 and 3 halves the resolution with a stride-2 convolution), global average pooling and a linear head:
19 convolutions and one linear layer, 0.27 M parameters. Every convolution is 3x3 with padding 1, has no bias and is
followed by batch norm.

Shortcuts are He et al.'s option A, as in BioTorch's ``biotorch/models/small_resnet.py`` (its ``IdentityPadding``,
after Idelbayev's ``pytorch_resnet_cifar10``) that its figures come from: the identity, and where a block halves the
resolution and doubles the maps, the input subsampled by 2 with zero maps added on both sides of the channel axis.
Shortcuts have no weights, so every learning rule sends the error along them unchanged: at a residual join
``out = relu(bn2(conv2(.)) + shortcut(x))`` autograd adds the gradient arriving through the block's convolutions
(the rule's own signal, e.g. ``e B`` for feedback alignment) to the one arriving along the shortcut. Batch norm is a
plain ``nn.BatchNorm2d`` with its exact (local, per-channel) gradient under every rule, as in BioTorch.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn
from torch.nn import functional as F

from zoo.archs.base import PLAIN_LAYERS, Architecture, LayerKit
from zoo.archs.image_input import ImageInput

KERNEL = 3


def conv_out(size: int, stride: int) -> int:
    """Output height (or width) of a 3x3 convolution with padding 1 and ``stride``."""
    return (size + 2 - KERNEL) // stride + 1


class ChannelPadShortcut(nn.Module):
    """He et al.'s option-A shortcut: ``x[:, :, ::stride, ::stride]`` with ``out_channels - in_channels`` zero maps
    split between both ends of the channel axis. No weights."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"an option-A shortcut cannot reduce {in_channels} maps to {out_channels}")
        self.stride = stride
        self.before = (out_channels - in_channels) // 2
        self.after = out_channels - in_channels - self.before

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.before, self.after))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels=({self.before}, {self.after})"


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; ``in_shape`` is the block input's ``(C, H, W)``."""

    def __init__(self, in_shape: tuple[int, int, int], channels: int, stride: int, layers: LayerKit) -> None:
        super().__init__()
        c, h, w = in_shape
        self.conv1 = layers.conv(c, channels, KERNEL, stride=stride, padding=1, bias=False, in_shape=in_shape)
        self.bn1 = nn.BatchNorm2d(channels)
        self.out_shape = (channels, conv_out(h, stride), conv_out(w, stride))
        self.conv2 = layers.conv(channels, channels, KERNEL, padding=1, bias=False, in_shape=self.out_shape)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = (ChannelPadShortcut(c, channels, stride) if stride != 1 or c != channels
                                    else nn.Identity())
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(h)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """``input -> conv 3x3 (16) -> bn -> relu -> stages of basic blocks (16, 32, 64 maps) -> global average pool
    -> linear num_classes``, built through the layer kit (``stem``, ``stages.S.B.conv1`` / ``conv2``, ``head``).
    ``blocks`` per stage: 3 gives ResNet-20 (depth ``6 * blocks + 2``)."""

    widths = (16, 32, 64)

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 blocks: int = 3, *, layers: LayerKit = PLAIN_LAYERS) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"blocks must be at least 1 per stage, got {blocks}")
        self.input = ImageInput(in_shape, mean, std, channels_last=True)
        c, h, w = self.input.in_shape
        self.stem = layers.conv(c, self.widths[0], KERNEL, padding=1, bias=False, in_shape=(c, h, w))
        self.stem_bn = nn.BatchNorm2d(self.widths[0])
        shape = (self.widths[0], h, w)
        stages = []
        for index, width in enumerate(self.widths):
            stage = []
            for block in range(blocks):
                stride = 2 if index > 0 and block == 0 else 1
                stage.append(BasicBlock(shape, width, stride, layers))
                shape = stage[-1].out_shape
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = layers.linear(self.widths[-1], num_classes)
        self.act = nn.ReLU()

    def features(self, x: Tensor) -> Tensor:
        """The pooled activations of the last stage, ``[N, 64]``."""
        h = self.act(self.stem_bn(self.stem(self.input(x))))
        return self.pool(self.stages(h)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for float images ``[N, C, H, W]`` in ``[0, 1]``."""
        return self.head(self.features(x))


ARCHITECTURE = Architecture(
    name="resnet20",
    summary="CIFAR ResNet-20 (3 stages x 3 basic blocks, 16-32-64 maps, batch norm, option-A shortcuts)",
    network=CifarResNet,
    datasets=("cifar10",),
    paper="He, Zhang, Ren & Sun, Deep residual learning for image recognition (CVPR 2016)",
)
