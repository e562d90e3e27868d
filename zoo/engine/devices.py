"""Device names as users write them (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), checked before use."""
from __future__ import annotations

import re

import torch
from torch import nn

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """The :class:`torch.device` for ``spec``; ``auto`` (or ``None``) picks CUDA, then MPS, then the CPU.

    An unknown name, or a device this machine does not have, raises :class:`ValueError` saying what is
    accepted and what is available.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec is None or spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise ValueError(f"device 'mps' is not available on this machine; available: {available_devices()}")
        return torch.device("mps")
    match = _CUDA.match(spec)
    if match is None:
        raise ValueError(f"unknown device {spec!r}; accepted: {', '.join(DEVICE_CHOICES)}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(match.group(1) or 0)
    if index >= count:
        raise ValueError(f"device {spec!r} is not available: this machine has {count} CUDA device(s); "
                         f"available: {available_devices()}")
    return torch.device("cuda", index)


def available_devices() -> list[str]:
    """The device names this machine can use now."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a model without tensors)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
