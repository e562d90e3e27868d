"""A small CIFAR-10 conv net: three 5x5 convolutions with 32, 64 and 128 maps, then 84 hidden units, about 0.27 M
parameters on 3x32x32 images. It is not the net behind BioTorch's CIFAR-10 figures (Sanfiz & Akrout 2021; its
``le_net_cifar``), which has the same maps with 3x3 kernels, global average pooling and 256 hidden units (0.13 M
parameters)."""
from __future__ import annotations

from zoo.archs.base import Architecture
from zoo.archs.conv_stack import ConvStack


class CNN(ConvStack):
    """``input -> conv 5x5 (32) -> ReLU -> pool 2 -> conv 5x5 (64) -> ReLU -> pool 2 -> conv 5x5 (128) -> ReLU
    -> flatten -> linear 84 -> ReLU -> dropout -> linear num_classes``. Convolutions are unpadded: 32x32 images
    give 28 -> 14 -> 10 -> 5 -> 1, so the fully connected part sees 128 features; smaller inputs raise."""

    name = "cnn"
    channels = (32, 64, 128)
    pooled = (True, True, False)
    kernel_size = 5
    fc_width = 84


ARCHITECTURE = Architecture(
    name="cnn",
    summary="Small CIFAR conv net (32-64-128 5x5 conv maps, 84 hidden units)",
    network=CNN,
    options={"dropout": 0.0},
    datasets=("cifar10",),
    paper="Sanfiz & Akrout, Benchmarking the accuracy and robustness of feedback alignment algorithms "
          "(arXiv:2108.13446, 2021)",
)
