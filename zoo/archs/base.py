"""What an architecture declares, and the layer slots through which a learning rule attaches to it.

An architecture module under ``zoo/archs/`` defines its network class and one :class:`Architecture` named
``ARCHITECTURE``; the registry finds it there. The network builds every fully connected layer with
``layers.linear`` and every convolution with ``layers.conv``, so a rule that brings its own layer types (a
:class:`LayerKit`) trains the same network, as BioTorch converts a network's layers to a rule's layers, but
explicitly: the architecture never names a rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from torch import nn


class LinearFactory(Protocol):
    """Builds a fully connected layer ``in_features -> out_features`` (with bias)."""

    def __call__(self, in_features: int, out_features: int) -> nn.Module: ...


class ConvFactory(Protocol):
    """Builds a ``kernel_size`` x ``kernel_size`` convolution (with a bias unless ``bias=False``, as before batch
    norm).

    ``in_shape`` is the ``(C, H, W)`` of the layer's input; plain layers ignore it, rules whose layer state
    depends on it (e.g. direct feedback alignment's projection of the output error onto the layer's input) use it.
    """

    def __call__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 bias: bool = True, in_shape: tuple[int, int, int]) -> nn.Module: ...


def plain_linear(in_features: int, out_features: int) -> nn.Module:
    """An ordinary ``nn.Linear`` (the backprop layer)."""
    return nn.Linear(in_features, out_features)


def plain_conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
               bias: bool = True, in_shape: tuple[int, int, int]) -> nn.Module:
    """An ordinary ``nn.Conv2d`` (the backprop layer)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)


@dataclass(frozen=True)
class LayerKit:
    """The layer types one model is built from: ``linear`` for fully connected layers, ``conv`` for convolutions.
    A rule makes a fresh kit per model (its layers may share per-model state, e.g. DFA's error signal)."""

    linear: LinearFactory = plain_linear
    conv: ConvFactory = plain_conv


PLAIN_LAYERS = LayerKit()


@dataclass(frozen=True)
class Architecture:
    """A network every layer-based learning rule can train.

    ``network(in_shape, num_classes, mean, std, layers=kit, **options)`` builds it; ``options`` are its own keys with
    their defaults (recorded in each checkpoint's ``arch``); ``datasets`` are the datasets whose images it is
    designed for (a family gets a recipe and a manifest entry for each); ``summary`` is a noun phrase
    ("Two-hidden-layer MLP") that family descriptions start with.
    """

    name: str
    summary: str
    network: Callable[..., nn.Module]
    options: Mapping[str, Any] = field(default_factory=dict)
    datasets: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10")
    paper: str = ""
