"""A LeNet-5-size conv net (Caffe's LeNet: 20 and 50 feature maps, 500 hidden units) shared by the rule families
that train convolutional nets."""
from __future__ import annotations

from typing import Protocol, Sequence

from torch import Tensor, nn

from zoo.archs.image_input import ImageInput
from zoo.archs.mlp import LinearFactory

CONV_CHANNELS = (20, 50)
KERNEL_SIZE = 5
POOL = 2
FC_WIDTH = 500


class ConvFactory(Protocol):
    """Builds a ``kernel_size`` x ``kernel_size`` convolution (stride 1, no padding).

    ``in_shape`` is the ``(C, H, W)`` of the layer's input; plain layers ignore it, rules whose layer state
    depends on it (e.g. direct feedback alignment's projection of the output error onto the layer's input)
    use it.
    """

    def __call__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 in_shape: tuple[int, int, int]) -> nn.Module: ...


def plain_conv(in_channels: int, out_channels: int, kernel_size: int, *, in_shape: tuple[int, int, int]) -> nn.Module:
    """An ordinary ``nn.Conv2d`` (the backprop layer)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size)


def lenet_shapes(in_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """The input shape ``(C, H, W)`` of each layer, by module name (``conv1``, ``conv2``, ``fc``, ``head``)."""
    c, h, w = (int(d) for d in in_shape)
    shapes: dict[str, tuple[int, ...]] = {}
    for name, out_channels in zip(("conv1", "conv2"), CONV_CHANNELS):
        shapes[name] = (c, h, w)
        h, w = (h - KERNEL_SIZE + 1) // POOL, (w - KERNEL_SIZE + 1) // POOL
        if h < 1 or w < 1:
            raise ValueError(f"input {list(in_shape)} is too small for LeNet (two 5x5 conv + 2x2 pool stages)")
        c = out_channels
    shapes["fc"] = (c * h * w,)
    shapes["head"] = (FC_WIDTH,)
    return shapes


class LeNet(nn.Module):
    """``input -> [conv 5x5 -> ReLU -> maxpool 2] x 2 (20, 50 maps) -> flatten -> linear 500 -> ReLU -> dropout
    -> linear num_classes``.

    The flatten size follows from ``in_shape`` (800 for 1x28x28, 1250 for 3x32x32). ``conv`` and ``linear``
    build every conv / fully connected layer, so a learning rule attaches to the same architecture by passing
    its own layer types.
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 dropout: float = 0.0, conv: ConvFactory = plain_conv,
                 linear: LinearFactory = nn.Linear) -> None:
        super().__init__()
        self.input = ImageInput(in_shape, mean, std)
        shapes = lenet_shapes(self.input.in_shape)
        self.conv1 = conv(shapes["conv1"][0], CONV_CHANNELS[0], KERNEL_SIZE,
                          in_shape=shapes["conv1"])  # type: ignore[arg-type]
        self.conv2 = conv(shapes["conv2"][0], CONV_CHANNELS[1], KERNEL_SIZE,
                          in_shape=shapes["conv2"])  # type: ignore[arg-type]
        self.fc = linear(shapes["fc"][0], FC_WIDTH)
        self.head = linear(FC_WIDTH, num_classes)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(POOL)
        self.drop = nn.Dropout(dropout)

    def features(self, x: Tensor) -> Tensor:
        """Activations of the 500-unit hidden layer, ``[N, 500]``."""
        h = self.pool(self.act(self.conv1(self.input(x))))
        h = self.pool(self.act(self.conv2(h)))
        return self.drop(self.act(self.fc(h.flatten(1))))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for float images ``[N, C, H, W]`` in ``[0, 1]``."""
        return self.head(self.features(x))
