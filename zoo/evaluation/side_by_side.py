"""What every side-by-side comparison of checkpoints needs: one dataset they share, and the same test images."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from zoo.weights.manifest import Entry


def shared_dataset(entries: Sequence[Entry], purpose: str) -> str:
    """The dataset all ``entries`` were trained on; :class:`ValueError` naming each one's if they differ.
    ``purpose`` completes the message: "<purpose> compares checkpoints of one dataset"."""
    datasets = {entry.name: entry.dataset for entry in entries}
    if len(set(datasets.values())) != 1:
        raise ValueError(f"{purpose} compares checkpoints of one dataset; got "
                         f"{', '.join(f'{i} ({d})' for i, d in datasets.items()) or 'no ids'}")
    return next(iter(datasets.values()))


def distinct_models(model_ids: Sequence[str]) -> list[str]:
    """The models ``model_ids`` refer to, each once, in order, by :attr:`Entry.name` (a manifest id, or a training
    run's folder however its path was written): how tables and pictures name them."""
    from zoo.api import get_entry

    return list(dict.fromkeys(get_entry(model_id).name for model_id in model_ids))


def shared_test_images(model_ids: Sequence[str], n_images: int, data_root: str | Path | None,
                       purpose: str) -> tuple[str, Tensor, Tensor]:
    """The dataset of ``model_ids`` and its first ``n_images`` test images (float in [0, 1]) with their labels."""
    from zoo.api import get_entry
    from zoo.data import load_split

    dataset = shared_dataset([get_entry(model_id) for model_id in model_ids], purpose)
    raw, labels = load_split(dataset, "test", data_root, limit=n_images)
    return dataset, raw.to(torch.float32).div_(255.0), labels
