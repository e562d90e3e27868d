"""MNIST and Fashion-MNIST: torchvision's layout ``root/{MNIST,FashionMNIST}/raw/<file>[.gz]``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from zoo.data import fetch
from zoo.data.bundle import BUNDLED_FILES, bundled_path
from zoo.data.catalog import DATASETS, IDX_FILES, IDX_FOLDERS, IDX_SHA256
from zoo.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from zoo.errors import DataFormatError, DatasetNotFoundError


def raw_dir(root: Path, dataset: str) -> Path:
    """``root/MNIST/raw`` or ``root/FashionMNIST/raw``."""
    return root / IDX_FOLDERS[dataset] / "raw"


def candidates(root: Path, dataset: str, filename: str) -> list[Path]:
    """Paths where ``filename`` is looked for, in order: uncompressed, then gzipped."""
    d = raw_dir(root, dataset)
    return [d / filename, d / f"{filename}.gz"]


def _locate(root: Path, dataset: str, filename: str, download: bool, verify: bool, bundled: bool) -> Path | None:
    for path in candidates(root, dataset, filename):
        if path.is_file():
            return path
    if download:
        return fetch.download_idx(dataset, filename, raw_dir(root, dataset), verify=verify)
    if bundled and dataset == "mnist" and filename in BUNDLED_FILES:
        return bundled_path(filename)
    return None


def load_idx_split(
    dataset: str, split: str, root: Path, *, download: bool, verify: bool, limit: int | None, bundled: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split of MNIST / Fashion-MNIST as ``(uint8 [N,1,28,28], int64 [N])``.

    Files are taken from ``root`` (uncompressed preferred over ``.gz``); missing ones are downloaded
    when ``download``, else, for the MNIST test split only and when ``bundled``, the copy bundled with the
    package is used.
    """
    images_name, labels_name = IDX_FILES[split]
    paths = {name: _locate(root, dataset, name, download, verify, bundled) for name in (images_name, labels_name)}
    missing = [name for name, p in paths.items() if p is None]
    if missing:
        looked = [str(p) for name in missing for p in candidates(root, dataset, name)]
        bases = " or ".join(fetch.mirror_bases(dataset))
        raise DatasetNotFoundError(
            f"{dataset} {split} split not found under {root}; looked for:\n  "
            + "\n  ".join(looked)
            + f"\nPass download=True (command line: --download) to fetch the missing files (<name>.gz from {bases}), "
            "or put the official files (raw or .gz) at those paths; "
            "root= or $ZOO_DATA_ROOT selects another data folder."
        )
    hashes = IDX_SHA256[dataset]
    img_path, lbl_path = paths[images_name], paths[labels_name]
    assert img_path is not None and lbl_path is not None
    images, img_dims = read_idx(img_path, IMAGES_MAGIC, sha256=hashes[images_name] if verify else None, limit=limit)
    labels, lbl_dims = read_idx(lbl_path, LABELS_MAGIC, sha256=hashes[labels_name] if verify else None, limit=limit)
    info = DATASETS[dataset]
    if tuple(img_dims[1:]) != info.in_shape[1:]:
        raise DataFormatError(f"{img_path}: images are {img_dims[1:]}, expected {info.in_shape[1:]}")
    if img_dims[0] != lbl_dims[0]:
        raise DataFormatError(
            f"{img_path} holds {img_dims[0]} images but {lbl_path} holds {lbl_dims[0]} labels"
        )
    if labels.size and int(labels.max()) >= info.num_classes:
        raise DataFormatError(f"{lbl_path}: label {int(labels.max())} out of range 0..{info.num_classes - 1}")
    x = torch.from_numpy(images).unsqueeze(1)  # [N, 1, 28, 28], contiguous, shares the buffer
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y
