"""What :func:`zoo.engine.fit.fit` accepts as training data, checked before the first step.

Every zoo model takes float images in ``[0, 1]``; ``fit`` takes those, and uint8 images (0-255, the datasets' own
encoding), which it scales per batch. Anything else that could be read two ways (floats above 1, which may be 0-255
values; integer images other than uint8) is refused rather than guessed, as are shapes, label counts and label values
the model cannot train on. NumPy arrays are accepted and converted.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from zoo.archs.image_input import shape_text
from zoo.registry import CFG_ATTRIBUTE

UINT8_SCALE = 255.0


class FitInputs(NamedTuple):
    """Checked training data: ``images`` as given (uint8 or float), ``labels`` as int64, and the divisor that takes
    a batch of ``images`` to ``[0, 1]`` (255 for uint8, 1 for floats)."""

    images: Tensor
    labels: Tensor
    scale: float


def _as_tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if not isinstance(value, Tensor):
        raise TypeError(f"fit: {what} must be a torch.Tensor or a NumPy array, got {type(value).__name__}")
    return value


def check_fit_inputs(model: nn.Module, images: Any, labels: Any) -> FitInputs:
    """``images`` and ``labels`` checked against ``model`` (a zoo model: its ``zoo_cfg.arch`` gives the input shape
    and the class count); a clear :class:`ValueError` names what is wrong and what is accepted."""
    arch = getattr(model, CFG_ATTRIBUTE).arch
    in_shape, num_classes = tuple(int(d) for d in arch["in_shape"]), int(arch["num_classes"])
    images, labels = _as_tensor(images, "images"), _as_tensor(labels, "labels")
    if images.dim() != 4 or tuple(images.shape[1:]) != in_shape:
        raise ValueError(f"fit: images must have shape {shape_text(in_shape)} for this model, got {list(images.shape)}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(f"fit: labels must be one class index per image, shape [{len(images)}], got "
                         f"{list(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.dtype.is_complex:
        raise ValueError(f"fit: labels must be integer class indices, got dtype {labels.dtype}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"fit: labels must lie in [0, {num_classes - 1}] for this {num_classes}-class model, got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return FitInputs(images, labels.to(torch.int64), _image_scale(images))


def _image_scale(images: Tensor) -> float:
    """255 for uint8 images, 1 for float images in [0, 1]; anything else raises."""
    if images.dtype == torch.uint8:
        return UINT8_SCALE
    if not images.is_floating_point():
        raise ValueError(f"fit: images must be uint8 (0-255) or float in [0, 1], got dtype {images.dtype}; convert "
                         "them explicitly (e.g. images.to(torch.uint8) for 0-255 values)")
    if images.numel():
        low, high = (float(v) for v in torch.aminmax(images))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError("fit: images contain NaN or infinite values")
        if low < 0.0 or high > 1.0:
            hint = " (they look like 0-255 values: pass them as uint8, or divide by 255)" if high > 1.0 else ""
            raise ValueError(f"fit: float images must lie in [0, 1] like torchvision's ToTensor, got values in "
                             f"[{low:.4g}, {high:.4g}]{hint}")
    return 1.0
