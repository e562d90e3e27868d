"""The network LeNet and the small CIFAR CNN are both instances of: unpadded square convolutions (each with ReLU,
optionally followed by a 2x2 max-pool), one fully connected hidden layer, a linear head."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from zoo.archs.base import PLAIN_LAYERS, LayerKit
from zoo.archs.image_input import ImageInput
from zoo.engine.distributed import ShardedDropout

POOL = 2


def conv_stack_shapes(name: str, in_shape: Sequence[int], channels: Sequence[int], kernel_size: int,
                      pooled: Sequence[bool], fc_width: int) -> dict[str, tuple[int, ...]]:
    """The input shape ``(C, H, W)`` of each layer by module name (``conv1``, ``conv2``, ..., ``fc``, ``head``);
    an input too small for the stack raises naming the architecture ``name``."""
    c, h, w = (int(d) for d in in_shape)
    shapes: dict[str, tuple[int, ...]] = {}
    for index, (out_channels, pool) in enumerate(zip(channels, pooled)):
        shapes[f"conv{index + 1}"] = (c, h, w)
        h, w = h - kernel_size + 1, w - kernel_size + 1
        if pool:
            h, w = h // POOL, w // POOL
        if h < 1 or w < 1:
            stages = " + ".join(f"{kernel_size}x{kernel_size} conv" + (" + 2x2 pool" if p else "") for p in pooled)
            raise ValueError(f"input {list(in_shape)} is too small for the {name} architecture ({stages})")
        c = out_channels
    shapes["fc"] = (c * h * w,)
    shapes["head"] = (fc_width,)
    return shapes


class ConvStack(nn.Module):
    """``input -> [conv k x k -> ReLU (-> maxpool 2)] per stage -> flatten -> linear fc_width -> ReLU -> dropout
    -> linear num_classes``; ``layers`` builds every conv and fully connected layer (modules ``conv1`` ...,
    ``fc``, ``head``). Subclasses fix the stages."""

    name = "conv_stack"
    channels: tuple[int, ...] = ()
    pooled: tuple[bool, ...] = ()
    kernel_size = 5
    fc_width = 0

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 dropout: float = 0.0, *, layers: LayerKit = PLAIN_LAYERS) -> None:
        super().__init__()
        self.input = ImageInput(in_shape, mean, std, channels_last=True)
        shapes = self.shapes(self.input.in_shape)
        for index, out_channels in enumerate(self.channels):
            layer_in = shapes[f"conv{index + 1}"]
            conv = layers.conv(layer_in[0], out_channels, self.kernel_size, in_shape=layer_in)  # type: ignore[arg-type]
            self.add_module(f"conv{index + 1}", conv)
        self.fc = layers.linear(shapes["fc"][0], self.fc_width)
        self.head = layers.linear(self.fc_width, num_classes)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(POOL)
        self.drop = ShardedDropout(dropout)

    @classmethod
    def shapes(cls, in_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
        """The input shape of each layer for images of shape ``in_shape``."""
        return conv_stack_shapes(cls.name, in_shape, cls.channels, cls.kernel_size, cls.pooled, cls.fc_width)

    @property
    def convs(self) -> list[nn.Module]:
        """The convolutions as registered now (``conv1``, ``conv2``, ...): a module swapped in by name (a layer
        converter, quantisation, LoRA) is the one ``forward`` calls."""
        return [getattr(self, f"conv{index + 1}") for index in range(len(self.channels))]

    def features(self, x: Tensor) -> Tensor:
        """Activations of the fully connected hidden layer, ``[N, fc_width]``."""
        h = self.input(x)
        for conv, pool in zip(self.convs, self.pooled):
            h = self.act(conv(h))
            if pool:
                h = self.pool(h)
        return self.drop(self.act(self.fc(h.flatten(1))))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for float images ``[N, C, H, W]`` in ``[0, 1]``."""
        return self.head(self.features(x))
