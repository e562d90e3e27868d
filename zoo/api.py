"""The public entry points: list, describe and load pretrained models."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from zoo.data.transforms import ToFloatImages
from zoo.errors import ManifestError, UnknownModelError
from zoo.registry import get_family, suggest
from zoo.weights.checkpoint import build_loaded
from zoo.weights.manifest import Entry, Manifest, cached_manifest
from zoo.weights.paths import manifest_path
from zoo.weights.run_folder import is_run_folder, read_run_folder


def manifest() -> Manifest:
    """The validated weights manifest."""
    return cached_manifest(manifest_path())


def list_models(pattern: str | None = None, *, include_pending: bool = False) -> list[str]:
    """Ids (``<entrypoint>.<dataset>``) of the published checkpoints, optionally filtered by a glob
    pattern such as ``"*.mnist"``; ``include_pending=True`` adds checkpoints not trained yet."""
    ids = [e.id for e in manifest().entries.values() if include_pending or e.published]
    return sorted(i for i in ids if pattern is None or fnmatch.fnmatch(i, pattern))


def get_entry(model_id: str | Path) -> Entry:
    """The manifest entry of an id, or the entry of a training run's folder (its ``entry.json``, with the checkpoint
    beside it checked: :mod:`zoo.weights.run_folder`); an unknown id raises with the closest known ids."""
    if is_run_folder(model_id):
        return read_run_folder(model_id)
    model_id = str(model_id)
    entries = manifest().entries
    if model_id not in entries:
        raise UnknownModelError(f"unknown model id {model_id!r} (ids are '<entrypoint>.<dataset>'). "
                                f"{suggest(model_id, entries, 'model ids', 'python -m zoo list --all')}")
    return entries[model_id]


@dataclass(frozen=True)
class Weights:
    """A pretrained checkpoint: its manifest record (``meta``), its input conversion and its tensors."""

    entry: Entry

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def meta(self) -> dict[str, Any]:
        """The manifest entry as a dict: metrics, recipe, hashes, architecture."""
        return self.entry.to_dict()

    def transforms(self) -> ToFloatImages:
        """Converts uint8 (or [0, 1] float) images to the float ``[N, C, H, W]`` batch the model takes."""
        return ToFloatImages(self.entry.input["shape"])

    def get_state_dict(self, source: str = "auto") -> dict[str, torch.Tensor]:
        """The checkpoint's tensors, from a verified file."""
        from zoo.weights.resolve import raise_if_pending, resolve_file

        raise_if_pending(self.entry)
        return load_file(str(resolve_file(self.entry, source)), device="cpu")

    def __repr__(self) -> str:
        return f"Weights({self.entry.id!r}, status={self.entry.status!r}, top1={self.entry.metrics.get('top1')})"


def get_weights(model_id: str) -> Weights:
    """The :class:`Weights` of a checkpoint id such as ``"bp_mlp.mnist"``."""
    return Weights(get_entry(model_id))


def check_entry_against_family(entry: Entry) -> None:
    """Refuse a manifest entry that disagrees with its family's registry record: another learning rule, architecture
    keys the family does not have, or input statistics, shape and class count other than its dataset's."""
    family = get_family(entry.entrypoint)
    expected = family.arch_for(entry.dataset)
    problems = []
    if entry.learning_rule != family.learning_rule:
        problems.append(f"learning_rule is {entry.learning_rule!r}, the family's is {family.learning_rule!r}")
    if set(entry.arch) - set(expected):  # an option added later may be missing: its default applies
        problems.append(f"arch has keys {sorted(set(entry.arch) - set(expected))} the family does not "
                        f"(its keys: {sorted(expected)})")
    for key in ("in_shape", "num_classes", "mean", "std"):
        if key in entry.arch and entry.arch[key] != expected[key]:
            problems.append(f"arch.{key} is {entry.arch[key]}, {entry.dataset}'s is {expected[key]}")
    if problems:
        raise ManifestError(f"manifest entry {entry.id} disagrees with its family {family.name}: {'; '.join(problems)}")


def build_from_entry(entry: Entry, path: Path) -> nn.Module:
    """The model of ``entry`` (checked against its family) with the tensors of the (already verified) file at
    ``path``, in eval mode."""
    check_entry_against_family(entry)
    family = get_family(entry.entrypoint)
    return build_loaded(lambda: family.build_model(entry.arch, model_id=entry.id, dataset=entry.dataset),
                        path).eval()


def load(model_id: str | Path, *, source: str = "auto", device: str | torch.device = "cpu") -> nn.Module:
    """A pretrained model in eval mode on ``device`` (``cpu`` by default; ``auto``, ``cuda``, ``cuda:N``, ``mps``):
    a manifest id, or a training run's folder (``python -m training.train ... --out DIR``).

    ``source``: ``"auto"`` (checkout, then torch hub cache, then URL, then Hugging Face Hub), ``"local"``,
    ``"cache"``, ``"url"`` or ``"hf"``. The file's SHA-256 is checked against the manifest every time. Checkpoints
    are CPU fp32 files; the tensors are moved to ``device`` after loading, so every checkpoint loads anywhere.
    """
    from zoo.engine.devices import resolve_device
    from zoo.weights.resolve import resolve_file

    target = resolve_device(device)
    entry = get_entry(model_id)
    return build_from_entry(entry, resolve_file(entry, source)).to(target)


def create_model(entrypoint: str, weights: str | None = "DEFAULT", *, dataset: str | None = None,
                 in_shape: tuple[int, int, int] | None = None, num_classes: int | None = None,
                 source: str = "auto", **arch: Any) -> nn.Module:
    """Build a family's model: pretrained on ``weights`` (a dataset tag, or ``"DEFAULT"`` for the family's
    :attr:`~zoo.registry.Family.default_dataset`: MNIST, or the only dataset of a one-dataset family), or untrained
    when ``weights=None`` (then ``dataset=`` or ``in_shape=``/``num_classes=`` set its shape)."""
    family = get_family(entrypoint)
    if weights is None:
        return family.build_model(family.arch_for(dataset, in_shape=in_shape, num_classes=num_classes, **arch),
                                  dataset=dataset)
    if dataset is not None or in_shape is not None or num_classes is not None or arch:
        raise ValueError(f"{entrypoint}: dataset=/in_shape=/num_classes=/architecture options apply only to "
                         f"weights=None; pretrained weights fix the architecture (got weights={weights!r})")
    tag = family.default_dataset if weights == "DEFAULT" else weights
    return load(f"{entrypoint}.{tag}", source=source)
