"""Checkpoint files: safetensors only, fp32, byte-for-byte reproducible from the same tensors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from zoo.files import atomic_write

FORMAT_VERSION = "1"
METADATA_KEY = "bioplausible_zoo"


def checkpoint_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Everything needed to use *and* keep training the model: parameters and persistent buffers
    (e.g. fixed feedback matrices), as contiguous fp32 CPU tensors that share no memory."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        out[name] = tensor.detach().to("cpu").contiguous().clone()
    return out


def save_checkpoint(model: nn.Module, path: Path, *, entrypoint: str, arch: Mapping[str, Any]) -> Path:
    """Write ``model`` to ``path`` atomically. The metadata records the family and architecture so the file
    describes itself; it holds no timestamp, so identical tensors give identical bytes. It is a single
    key holding sorted JSON because safetensors writes the metadata map in no fixed order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {METADATA_KEY: json.dumps({"format_version": FORMAT_VERSION, "entrypoint": entrypoint,
                                          "arch": dict(arch)}, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(checkpoint_tensors(model), tmp, metadata=metadata))
    return path


def read_metadata(path: Path) -> dict[str, Any]:
    """What the zoo stored in a checkpoint's header: ``format_version``, ``entrypoint``, ``arch``."""
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def _check_fits(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise naming every missing, unexpected and wrongly shaped tensor unless ``state`` fits ``model`` exactly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        details = [f"missing {missing}" if missing else "", f"unexpected {unexpected}" if unexpected else "",
                   "wrong shapes " + ", ".join(f"{k}: file {list(state[k].shape)} vs model "
                                               f"{list(expected[k].shape)}" for k in wrong) if wrong else ""]
        raise ValueError(f"checkpoint {path} does not fit the model: " + "; ".join(d for d in details if d))


def load_into(model: nn.Module, path: Path) -> nn.Module:
    """Load a checkpoint's tensors into ``model`` (strict: every key and shape must match)."""
    state = load_file(str(path), device="cpu")
    _check_fits(model, state, path)
    model.load_state_dict(state, strict=True)
    return model


@runtime_checkable
class RebuildsBuffers(Protocol):
    """A module whose non-persistent buffers (constants such as input statistics, or per-batch state) are not in
    its checkpoint: :func:`build_loaded` calls ``rebuild_buffers()`` to make them again on the CPU."""

    def rebuild_buffers(self) -> None: ...


def build_loaded(build: Callable[[], nn.Module], path: Path) -> nn.Module:
    """The module ``build()`` makes, holding the checkpoint's tensors at ``path`` (strict, as :func:`load_into`),
    built without the random initialisation that loading would overwrite: ``build`` runs on the meta device (no
    memory, no random numbers drawn), the file's tensors become the parameters and buffers, and every
    :class:`RebuildsBuffers` module rebuilds the buffers the file does not hold."""
    state = load_file(str(path), device="cpu")
    with torch.device("meta"):
        model = build()
    _check_fits(model, state, path)
    model.load_state_dict(state, strict=True, assign=True)
    for module in model.modules():
        if isinstance(module, RebuildsBuffers):
            module.rebuild_buffers()
    unmade = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if unmade:
        raise RuntimeError(f"{type(model).__name__} left tensors {unmade} unmade after loading {path}: a module "
                           "with non-persistent buffers must implement rebuild_buffers()")
    return model
