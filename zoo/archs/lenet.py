"""A LeNet-5-size conv net (Caffe's LeNet: 20 and 50 feature maps, 500 hidden units)."""
from __future__ import annotations

from zoo.archs.base import Architecture
from zoo.archs.conv_stack import ConvStack


class LeNet(ConvStack):
    """``input -> [conv 5x5 -> ReLU -> maxpool 2] x 2 (20, 50 maps) -> flatten -> linear 500 -> ReLU -> dropout
    -> linear num_classes``. The flatten size follows from ``in_shape`` (800 for 1x28x28, 1250 for 3x32x32)."""

    name = "lenet"
    channels = (20, 50)
    pooled = (True, True)
    kernel_size = 5
    fc_width = 500


ARCHITECTURE = Architecture(
    name="lenet",
    summary="LeNet-5-size conv net (20-50 conv maps, 500 hidden units)",
    network=LeNet,
    options={"dropout": 0.0},
    paper="LeCun, Bottou, Bengio & Haffner, Gradient-based learning applied to document recognition (Proc. IEEE 1998)",
)
