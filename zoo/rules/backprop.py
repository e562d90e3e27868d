"""Backpropagation: the baseline every biologically plausible rule is compared with."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from zoo.alignment import gradient_alignment
from zoo.archs.lenet import LeNet
from zoo.archs.mlp import MLP
from zoo.registry import Family, register
from zoo.trainer import GradientTrainer


def build_bp_mlp(in_shape: tuple[int, int, int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 hidden: Sequence[int], dropout: float) -> nn.Module:
    """The two-hidden-layer MLP with ordinary ``nn.Linear`` layers."""
    return MLP(in_shape, num_classes, mean, std, hidden=hidden, dropout=dropout)


register(Family(
    name="bp_mlp",
    learning_rule="backprop",
    summary="Two-hidden-layer MLP trained with backpropagation (the baseline of every rule family).",
    build=build_bp_mlp,
    trainer=GradientTrainer,
    default_arch={"hidden": [800, 800], "dropout": 0.2},
    paper="Rumelhart, Hinton & Williams, Learning representations by back-propagating errors (Nature 1986)",
    alignment=gradient_alignment,
))


def build_bp_lenet(in_shape: tuple[int, int, int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                   dropout: float) -> nn.Module:
    """LeNet with ordinary ``nn.Conv2d`` and ``nn.Linear`` layers."""
    return LeNet(in_shape, num_classes, mean, std, dropout=dropout)


register(Family(
    name="bp_lenet",
    learning_rule="backprop",
    summary="LeNet-5-size conv net (20-50 conv maps, 500 hidden units) trained with backpropagation.",
    build=build_bp_lenet,
    trainer=GradientTrainer,
    default_arch={"dropout": 0.0},
    paper="LeCun, Bottou, Bengio & Haffner, Gradient-based learning applied to document recognition (Proc. IEEE 1998)",
    alignment=gradient_alignment,
))
