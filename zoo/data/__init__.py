"""Dataset readers: MNIST, Fashion-MNIST and CIFAR-10, whole splits in memory as uint8 tensors.

>>> from zoo.data import DATASETS, load_split
>>> x, y = load_split("mnist", "test")          # bundled with the package: works offline
>>> x.shape, x.dtype, y.dtype
(torch.Size([10000, 1, 28, 28]), torch.uint8, torch.int64)

Files are read from torchvision's on-disk layout under a data root (``root=``, else
:func:`default_data_root`), verified against the official releases (``verify=True``), and fetched
from the official mirrors on request (``download=True``; ``$ZOO_DATA_MIRROR`` overrides the mirror).
"""
from __future__ import annotations

from pathlib import Path

import torch

from zoo.data.catalog import DATASETS, SPLITS, DatasetInfo, check_split, dataset_info
from zoo.data.roots import check_root_exists, default_data_root, resolve_root
from zoo.errors import DataFormatError, UnsafeArchiveError, UnsafePickleError

__all__ = [
    "DATASETS",
    "SPLITS",
    "DatasetInfo",
    "DataFormatError",
    "UnsafeArchiveError",
    "UnsafePickleError",
    "default_data_root",
    "load_split",
]


def load_split(
    dataset: str,
    split: str = "test",
    root: str | Path | None = None,
    *,
    download: bool = False,
    verify: bool = True,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole split in memory: images uint8 ``[N, C, H, W]`` (contiguous), labels int64 ``[N]``.

    ``dataset`` is ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``; ``split`` is ``"train"`` or
    ``"test"`` (:class:`ValueError` otherwise). ``root`` defaults to :func:`default_data_root`.
    ``download=True`` fetches missing files into ``root`` (torchvision layout). ``verify=True`` checks
    file content against the official release (:class:`zoo.errors.ChecksumError` if it differs);
    ``verify=False`` skips that, for generated test files. ``limit`` keeps the first ``limit`` samples.
    Missing files raise :class:`zoo.errors.DatasetNotFoundError` naming the paths looked for; malformed
    files raise :class:`DataFormatError`. The MNIST test split falls back to a copy bundled with the
    package when the default root (``root=None``) lacks it and ``download`` is false; a ``root`` given explicitly
    is used as given: it must exist (unless ``download``) and hold the files, so a mistyped path is an error.
    """
    info = dataset_info(dataset)
    check_split(split)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, not {limit!r}")
    root_path = resolve_root(root)
    if root is not None and not download:
        check_root_exists(root_path)
    if info.name == "cifar10":
        from zoo.data.cifar import load_cifar10_split

        images, labels = load_cifar10_split(split, root_path, download=download, verify=verify, limit=limit)
    else:
        from zoo.data.mnist import load_idx_split

        images, labels = load_idx_split(info.name, split, root_path, download=download, verify=verify, limit=limit,
                                        bundled=root is None)
    assert images.dtype == torch.uint8 and images.is_contiguous() and tuple(images.shape[1:]) == info.in_shape
    assert labels.dtype == torch.int64 and labels.shape == (images.shape[0],)
    return images, labels
