"""The resumable state of a training run, saved after every epoch: safetensors for tensors, JSON for the rest.

A run folder holds ``state.json`` and the ``state-epochNNNN.safetensors`` it names. The JSON records the epoch
reached, the SHA-256 of the tensor file, and the structure of the trainer's state (optimiser moments, step
counters, a rule's running statistics), of every random number generator and of the caller's history, with each
tensor replaced by the key it has in the tensor file. Nothing is pickled. ``state.json`` is replaced atomically
only after its tensor file is complete, so a run killed at any moment leaves either the previous epoch's state or
the new one, never a mixture.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from zoo.files import atomic_write
from zoo.weights.integrity import sha256_file

STATE_JSON = "state.json"
STATE_FORMAT = 1


@dataclass(frozen=True)
class SavedState:
    """What :func:`load_train_state` found: the epochs completed and the caller's JSON ``extra``."""

    epochs_done: int
    extra: dict[str, Any]


def flatten(value: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """``value`` as JSON, with each tensor moved into ``tensors`` under a key derived from ``prefix``.

    Mappings become ``{"__items__": [[key, value], ...]}`` so that integer keys (optimiser state) survive;
    tuples and lists become lists; non-finite floats become ``{"__float__": "nan"}`` and the like.
    """
    if isinstance(value, Tensor):
        tensors[prefix] = value.detach().to("cpu").contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(value, dict):
        return {"__items__": [[key, flatten(item, f"{prefix}.{key}", tensors)] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        return [flatten(item, f"{prefix}.{i}", tensors) for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save training state of type {type(value).__name__} at {prefix!r}")


def unflatten(value: Any, tensors: dict[str, Tensor]) -> Any:
    """The inverse of :func:`flatten`."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__float__" in value:
            return float(value["__float__"])
        return {key: unflatten(item, tensors) for key, item in value["__items__"]}
    if isinstance(value, list):
        return [unflatten(item, tensors) for item in value]
    return value


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random number generator a training run draws from: torch's global CPU generator, the data-order
    generator and, where CUDA is initialised, each CUDA device's generator."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` recorded."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(folder: Path, *, model: nn.Module, trainer_state: dict[str, Any], generator: torch.Generator,
                     epochs_done: int, extra: dict[str, Any]) -> Path:
    """Write the state after ``epochs_done`` epochs into ``folder`` atomically; return the JSON file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    model_state = flatten(dict(model.state_dict()), "model", tensors)
    document = {"format": STATE_FORMAT, "epochs_done": epochs_done, "model": model_state,
                "trainer": flatten(trainer_state, "trainer", tensors),
                "rng": flatten(rng_state(generator), "rng", tensors),
                "extra": extra}
    name = f"state-epoch{epochs_done:04d}.safetensors"
    atomic_write(folder / name, lambda tmp: save_file(tensors, tmp))
    document["file"], document["sha256"] = name, sha256_file(folder / name)
    atomic_write(folder / STATE_JSON, lambda tmp: Path(tmp).write_text(json.dumps(document, indent=1)))
    for old in folder.glob("state-epoch*.safetensors"):
        if old.name != name:
            old.unlink()
    return folder / STATE_JSON


def load_train_state(folder: Path, *, model: nn.Module,
                     generator: torch.Generator) -> tuple[SavedState, dict[str, Any]]:
    """Restore the model and generators from ``folder``; return what was saved and the trainer's state (tensors on
    the CPU) for :meth:`zoo.engine.trainer.Trainer.load_state_dict`. A tensor file that does not match its recorded
    SHA-256 raises :class:`ValueError`."""
    document = read_state_json(Path(folder))
    path = Path(folder) / document["file"]
    actual = sha256_file(path)
    if actual != document["sha256"]:
        raise ValueError(f"{path} does not match the SHA-256 recorded in {STATE_JSON} (corrupted); delete the "
                         "folder's state files to start again")
    tensors = load_file(str(path), device="cpu")
    try:
        model.load_state_dict(unflatten(document["model"], tensors), strict=True)
        set_rng_state(unflatten(document["rng"], tensors), generator)
        trainer = unflatten(document["trainer"], tensors)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{Path(folder) / STATE_JSON}: the saved state does not fit this run ({exc}); delete the "
                         "folder's state files to start again") from None
    return SavedState(int(document["epochs_done"]), document["extra"]), trainer


STATE_KEYS = ("format", "epochs_done", "file", "sha256", "model", "trainer", "rng", "extra")


def read_state_json(folder: Path) -> dict[str, Any]:
    """``folder``'s ``state.json``, checked to be a training state of this format; anything else raises
    :class:`ValueError` naming the file."""
    path = Path(folder) / STATE_JSON
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the saved training state ({exc}); delete the folder's state files to "
                         "start again") from None
    missing = [key for key in STATE_KEYS if not isinstance(document, dict) or key not in document]
    if missing:
        raise ValueError(f"{path}: not a training state (missing {missing}); delete the folder's state files to "
                         "start again")
    if document["format"] != STATE_FORMAT:
        raise ValueError(f"{path}: unknown state format {document['format']!r} (this version reads {STATE_FORMAT})")
    return dict(document)


def saved_epochs(folder: Path) -> int | None:
    """Epochs completed by the state saved in ``folder``, or ``None`` if it holds none (:class:`ValueError` if its
    ``state.json`` is unreadable)."""
    if not (Path(folder) / STATE_JSON).is_file():
        return None
    return int(read_state_json(Path(folder))["epochs_done"])


def clear_train_state(folder: Path) -> None:
    """Remove the resumable state from ``folder`` (after the run has written its checkpoint)."""
    (Path(folder) / STATE_JSON).unlink(missing_ok=True)
    for old in Path(folder).glob("state-epoch*.safetensors"):
        old.unlink()
