"""The fully connected network (two hidden layers by default) of every rule that trains fully connected nets."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from zoo.archs.base import PLAIN_LAYERS, Architecture, LayerKit
from zoo.archs.image_input import ImageInput
from zoo.engine.distributed import ShardedDropout

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """``input -> [linear -> activation -> dropout] * len(hidden) -> linear`` on flattened images.

    ``layers.linear`` builds every fully connected layer; a learning rule passes its own layer type
    (e.g. a layer with a fixed feedback matrix) and the architecture stays the same.
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float],
                 hidden: Sequence[int] = (800, 800), dropout: float = 0.0, activation: str = "relu", *,
                 layers: LayerKit = PLAIN_LAYERS) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; accepted: {sorted(ACTIVATIONS)}")
        self.input = ImageInput(in_shape, mean, std)
        widths = [self.input.in_shape[0] * self.input.in_shape[1] * self.input.in_shape[2], *hidden]
        self.hidden = nn.ModuleList(layers.linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = layers.linear(widths[-1], num_classes)
        self.act = ACTIVATIONS[activation]()
        self.drop = ShardedDropout(dropout)

    def features(self, x: Tensor) -> Tensor:
        """Activations of the last hidden layer, ``[N, hidden[-1]]``."""
        h = self.input(x).flatten(1)
        for layer in self.hidden:
            h = self.drop(self.act(layer(h)))
        return h

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for float images ``[N, C, H, W]`` in ``[0, 1]``."""
        return self.head(self.features(x))


ARCHITECTURE = Architecture(
    name="mlp",
    summary="Two-hidden-layer MLP",
    network=MLP,
    options={"hidden": [800, 800], "dropout": 0.0, "activation": "relu"},
)
