"""One Hebbian hidden layer followed by a head: the network of every Hebbian rule (a rule variant, not a layer-slot
architecture: the Hebbian layer is the rule's own).

    image [N, C, H, W] in [0, 1]
      -> input normalisation v = normalise(x)          (identical while the Hebbian rule learns and at inference)
      -> currents W v                                  (W: [hidden, C*H*W], learned by a local rule, no bias)
      -> features h = relu(W v) ** power               (``model.features(x)``)
      -> head(h)                                       (trained with gradients: BioCell, linear or feedback alignment)

The Hebbian weight ``hebbian.weight`` is an ``nn.Parameter`` with ``requires_grad=False``: it is saved in the
checkpoint and counted in the parameters, but no optimiser ever touches it; only the family's local rule does.

Input normalisation (``input_norm``), a property of the architecture so inference repeats the training input:

* ``"raw"``: ``v = x`` in [0, 1] (Krotov & Hopfield's reference code: image / 255);
* ``"l2"``: ``v = x / ||x||_2`` per sample. The Krotov competition only ranks the currents of one sample, so
  the ranking is unchanged, but every sample then contributes equally to the Hebbian update and the hidden
  activations ``relu(W v) ** n`` keep the same scale whatever the amount of ink: the head sees well-scaled
  features and never overflows (the un-normalised ``** 4.5`` of the seed experiments is the cause of NaNs);
* ``"standard"``: per-channel dataset standardisation ``(x - mean) / std`` (the zoo's usual input);
* ``"standard_l2"``: standardisation, then per-sample L2 normalisation.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from zoo.archs.image_input import ImageInput

INPUT_NORMS = ("raw", "l2", "standard", "standard_l2")
HeadFactory = Callable[[int, int], nn.Module]


class HebbianLinear(nn.Module):
    """A bias-free fully connected layer ``W v`` whose weight is learned by a local rule, never by an optimiser.

    ``init_std``: entries start normal with this standard deviation (Krotov & Hopfield use 1); ``init_std=0``
    draws standard normal rows scaled to unit L2 norm.
    """

    def __init__(self, in_features: int, out_features: int, init_std: float = 1.0) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        weight = torch.randn(self.out_features, self.in_features)
        if init_std == 0:
            weight = weight / weight.norm(dim=1, keepdim=True)
        elif init_std > 0:
            weight = weight * float(init_std)
        else:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, v: Tensor) -> Tensor:
        return v @ self.weight.t()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, local rule (no gradients)"


class HebbianNet(nn.Module):
    """``head(relu(W normalise(x)) ** power)`` on flattened images; see the module docstring. ``local_rule`` names
    the rule that learned the Hebbian layer where a family offers several (e.g. ``semihebb_mlp``)."""

    local_rule: str | None = None

    def __init__(self, in_shape: Sequence[int], num_classes: int, mean: Sequence[float], std: Sequence[float], *,
                 hidden: int, head: HeadFactory, power: float = 1.0, input_norm: str = "l2",
                 init_std: float = 1.0) -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"unknown input_norm {input_norm!r}; accepted: {INPUT_NORMS}")
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        self.input_norm = input_norm
        self.power = float(power)
        standard = input_norm.startswith("standard")
        channels = int(in_shape[0])
        # ImageInput checks the input contract; with mean 0 / std 1 it leaves [0, 1] images as they are.
        self.input = ImageInput(in_shape, mean if standard else [0.0] * channels, std if standard else [1.0] * channels)
        n_in = channels * int(in_shape[1]) * int(in_shape[2])
        self.hebbian = HebbianLinear(n_in, hidden, init_std=init_std)
        self.head = head(int(hidden), int(num_classes))

    def hebbian_input(self, x: Tensor) -> Tensor:
        """The vectors ``v`` ``[N, C*H*W]`` the Hebbian layer sees, both while it learns and at inference."""
        v = self.input(x).flatten(1)
        if self.input_norm.endswith("l2"):
            v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return v

    def currents(self, x: Tensor) -> Tensor:
        """Input currents ``W v`` of the hidden units, ``[N, hidden]``."""
        return self.hebbian(self.hebbian_input(x))

    def activation(self, currents: Tensor) -> Tensor:
        """``relu(currents) ** power``."""
        h = torch.relu(currents)
        return h if self.power == 1.0 else h.pow(self.power)

    def features(self, x: Tensor) -> Tensor:
        """The hidden representation ``relu(W v) ** power``, ``[N, hidden]`` (the head's input)."""
        return self.activation(self.currents(x))

    def forward(self, x: Tensor) -> Tensor:
        """Outputs ``[N, num_classes]`` (logits, or BioCell's tanh outputs) for float images in [0, 1]."""
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        rule = self.local_rule
        return f"input_norm={self.input_norm!r}, power={self.power}" + (f", local_rule={rule!r}" if rule else "")


def linear_head(in_features: int, num_classes: int) -> nn.Module:
    """An ordinary linear read-out with bias."""
    return nn.Linear(in_features, num_classes)


def mlp_head(hidden: int, linear: Callable[[int, int], nn.Module]) -> HeadFactory:
    """A two-layer head ``linear -> ReLU -> linear`` whose layers ``linear`` builds (e.g. feedback alignment)."""
    def build(in_features: int, num_classes: int) -> nn.Module:
        return nn.Sequential(linear(in_features, hidden), nn.ReLU(), linear(hidden, num_classes))

    return build
