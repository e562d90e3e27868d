"""The first module of every model: checks the input contract and normalises inside the model."""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import Tensor, nn

RANGE_SLACK = 0.5  # inputs beyond [-0.5, 1.5] are not ToTensor-scaled images (noise and attacks stay inside)


def shape_text(shape: Sequence[int]) -> str:
    """``[N, 1, 28, 28]`` for ``(1, 28, 28)``."""
    return "[N, " + ", ".join(str(int(d)) for d in shape) + "]"


class ImageInput(nn.Module):
    """Accepts float images ``[N, C, H, W]`` in ``[0, 1]`` and returns them normalised per channel.

    The statistics are part of the architecture (they come from the training set), so a user can never forget or
    mismatch the normalisation. They are not stored in the checkpoint: they are rebuilt from the ``arch`` record of
    the manifest. With ``channels_last`` (conv nets) the normalised images come out in channels-last layout in eval
    mode, where the CPU convolutions that follow are faster (one thread, 500 CIFAR-10 images: LeNet 0.72x, the small
    CNN 0.62x, ResNet-20 0.79x the time; ``benchmarks/memory_format.py --eval``); training keeps the layout
    :func:`zoo.engine.fit.fit` chose.
    """

    def __init__(self, in_shape: Sequence[int], mean: Sequence[float], std: Sequence[float], *,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.in_shape = tuple(int(d) for d in in_shape)
        channels = self.in_shape[0]
        if len(self.in_shape) != 3 or len(mean) != channels or len(std) != channels:
            raise ValueError(f"in_shape must be (C, H, W) with C values of mean and std; got in_shape={in_shape}, "
                             f"mean={mean}, std={std}")
        self.statistics = (tuple(float(v) for v in mean), tuple(float(v) for v in std))
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.empty(1, channels, 1, 1), persistent=False)
        self.register_buffer("std", torch.empty(1, channels, 1, 1), persistent=False)
        self.rebuild_buffers()
        self.range_warned = False

    def rebuild_buffers(self) -> None:
        """Fill ``mean`` and ``std`` (not in checkpoints) from the statistics given at construction, on the CPU when
        the module was built on the meta device."""
        device = torch.device("cpu") if self.mean.is_meta else self.mean.device
        mean, std = self.statistics
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Check the contract, cast any float dtype to the model's (float64 from NumPy is the common case) and
        normalise. In eval mode, NaN or infinite values raise and values far outside [0, 1] (e.g. 0-255 floats) get a
        one-time warning; the value check is left out of a ``torch.compile`` graph."""
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape \
                or not x.is_floating_point():
            got = f"{x.dtype} tensor of shape {list(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"expected float images of shape {shape_text(self.in_shape)} scaled to [0, 1] (any float dtype); "
                f"got {got}. Convert uint8 images with zoo.get_weights(id).transforms().")
        x = x.to(self.mean.dtype)
        if not self.training and x.numel() and not torch.compiler.is_compiling():  # inference only
            self._check_values(x)
        x = (x - self.mean) / self.std
        if self.channels_last and not self.training:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _check_values(self, x: Tensor) -> None:
        low, high = (float(v) for v in torch.aminmax(x.detach()))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"input images contain NaN or infinite values (range [{low}, {high}]); the model takes "
                             "finite float images scaled to [0, 1]")
        if not self.range_warned and (low < -RANGE_SLACK or high > 1 + RANGE_SLACK):
            self.range_warned = True
            warnings.warn(f"input values span [{low:.3g}, {high:.3g}]; the model expects "
                          "images scaled to [0, 1] like torchvision's ToTensor (uint8 images: use "
                          "zoo.get_weights(id).transforms())", UserWarning, stacklevel=3)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}"
