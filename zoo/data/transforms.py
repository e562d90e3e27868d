"""Input conversion that matches the ToTensor convention: uint8 images to float ``[N, C, H, W]`` in ``[0, 1]``."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from zoo.archs.image_input import shape_text


class ToFloatImages:
    """Turn images into the float batch every zoo model takes.

    Accepts a torch tensor or NumPy array, uint8 (scaled by 1/255) or float already in ``[0, 1]``, shaped
    ``[N, C, H, W]``, ``[N, H, W, C]`` (channels last, as NumPy/PIL and CIFAR's arrays are),
    ``[N, H, W]`` for one-channel data, or a single image without ``N``. Normalisation is not done here:
    it happens inside the model.
    """

    def __init__(self, in_shape: Sequence[int]) -> None:
        self.in_shape = tuple(int(d) for d in in_shape)

    def __call__(self, images: Any) -> Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a torch.Tensor or numpy.ndarray of images, got {type(images).__name__}")
        c, h, w = self.in_shape
        batch = self._as_batch(x, c, h, w)
        if batch.dtype == torch.uint8:
            return batch.to(torch.float32).div_(255.0)
        if batch.is_floating_point():
            return batch.to(torch.float32)
        raise ValueError(f"expected uint8 or float images, got dtype {x.dtype}")

    def _as_batch(self, x: Tensor, c: int, h: int, w: int) -> Tensor:
        shape = tuple(x.shape)
        if shape[-3:] == (c, h, w) and x.dim() in (3, 4):
            return x.reshape(-1, c, h, w)
        if shape[-3:] == (h, w, c) and x.dim() in (3, 4):
            return x.reshape(-1, h, w, c).permute(0, 3, 1, 2).contiguous()
        if c == 1 and shape[-2:] == (h, w) and x.dim() in (2, 3):
            return x.reshape(-1, 1, h, w)
        raise ValueError(f"expected images of shape {shape_text(self.in_shape)}, [N, {h}, {w}, {c}]"
                         + (f" or [N, {h}, {w}]" if c == 1 else "") + f" (or one image without N); got {list(shape)}")

    def __repr__(self) -> str:
        return f"ToFloatImages(in_shape={self.in_shape}, output=float32 [N, C, H, W] in [0, 1])"
