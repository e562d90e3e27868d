"""Backpropagation: the baseline every biologically plausible rule is compared with. Its layers are the plain ones,
so it trains every architecture; in a residual net autograd's exact gradient flows through batch norm and adds the
shortcut's gradient to the block's at each residual join."""
from __future__ import annotations

from zoo.archs.base import PLAIN_LAYERS, LayerKit
from zoo.engine.trainer import GradientTrainer
from zoo.evaluation.alignment import gradient_alignment
from zoo.rules.base import Rule


def plain_layers(num_classes: int) -> LayerKit:
    """``nn.Linear`` and ``nn.Conv2d``: autograd's exact gradients."""
    return PLAIN_LAYERS


RULES = (
    Rule(
        name="bp",
        learning_rule="backprop",
        description="trained with backpropagation (the baseline of every rule family).",
        trainer=GradientTrainer,
        paper="Rumelhart, Hinton & Williams, Learning representations by back-propagating errors (Nature 1986)",
        layers=plain_layers,
        arch_defaults={"mlp": {"dropout": 0.2}},
        alignment=gradient_alignment,
    ),
)
