"""Architectures: LeNet and the small CIFAR-10 CNN, built through their layer slots."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.archs.base import LayerKit
from zoo.archs.cnn import CNN
from zoo.archs.image_input import ImageInput
from zoo.archs.lenet import LeNet


@pytest.mark.parametrize("in_shape,flat", [((1, 28, 28), 800), ((3, 32, 32), 1250)])
def test_lenet_shapes_follow_the_input(in_shape: tuple[int, int, int], flat: int) -> None:
    model = LeNet(in_shape, 10, [0.5] * in_shape[0], [0.5] * in_shape[0])
    assert isinstance(next(iter(model.children())), ImageInput)
    assert [type(m) for m in (model.conv1, model.conv2, model.fc, model.head)] == [nn.Conv2d, nn.Conv2d, nn.Linear,
                                                                                    nn.Linear]
    assert (model.conv1.out_channels, model.conv2.out_channels) == (20, 50)
    assert model.conv1.kernel_size == model.conv2.kernel_size == (5, 5)
    assert model.fc.in_features == flat and model.fc.out_features == 500 and model.head.out_features == 10
    x = torch.rand(2, *in_shape)
    assert model.features(x).shape == (2, 500)
    assert model(x).shape == (2, 10)
    assert torch.equal(model(x), model.head(model.features(x)))


def test_layer_factories_get_each_layer_input_shape() -> None:
    seen = []

    def conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
             in_shape: tuple[int, int, int]) -> nn.Module:
        seen.append((in_channels, out_channels, kernel_size, in_shape))
        return nn.Conv2d(in_channels, out_channels, kernel_size)

    LeNet((3, 32, 32), 7, [0.5] * 3, [0.5] * 3, layers=LayerKit(conv=conv))
    assert seen == [(3, 20, 5, (3, 32, 32)), (20, 50, 5, (20, 14, 14))]
    assert LeNet.shapes((1, 28, 28)) == {"conv1": (1, 28, 28), "conv2": (20, 12, 12), "fc": (800,), "head": (500,)}
    with pytest.raises(ValueError, match="too small"):
        LeNet.shapes((1, 12, 12))


def test_cnn_is_biotorchs_small_cifar_net() -> None:
    model = CNN((3, 32, 32), 10, [0.5] * 3, [0.5] * 3)
    assert sum(p.numel() for p in model.parameters()) == 270_310  # 2432 + 51264 + 204928 + 10836 + 850
    assert CNN.shapes((3, 32, 32)) == {"conv1": (3, 32, 32), "conv2": (32, 14, 14), "conv3": (64, 5, 5),
                                       "fc": (128,), "head": (84,)}
    x = torch.rand(2, 3, 32, 32)
    assert model.features(x).shape == (2, 84) and model(x).shape == (2, 10)
    with pytest.raises(ValueError, match="too small for the cnn architecture"):
        CNN((1, 28, 28), 10, [0.5], [0.5])
