"""Where datasets live on disk."""
from __future__ import annotations

import os
from pathlib import Path

from zoo.data.catalog import CIFAR_BIN_FOLDER, CIFAR_PY_FOLDER, IDX_FOLDERS
from zoo.errors import DatasetNotFoundError
from zoo.weights.paths import zoo_cache_home

ROOT_ENV = "ZOO_DATA_ROOT"


def default_data_root() -> Path:
    """The data root: ``$ZOO_DATA_ROOT`` if set, else ``$XDG_CACHE_HOME/bioplausible-zoo/datasets``
    (``~/.cache/bioplausible-zoo/datasets`` when ``XDG_CACHE_HOME`` is unset, empty or relative).

    Under the root, datasets use torchvision's layout (``MNIST/raw/``, ``FashionMNIST/raw/``,
    ``cifar-10-batches-py/``), so a folder shared with torchvision works as is.
    """
    env = os.environ.get(ROOT_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return zoo_cache_home() / "datasets"


def resolve_root(root: str | Path | None) -> Path:
    """``root`` as a :class:`Path` (``~`` expanded), or :func:`default_data_root` when ``None``."""
    if root is None:
        return default_data_root()
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str, a Path or None, not {type(root).__name__}")
    return Path(root).expanduser()


def layout() -> str:
    """The folders a data root holds, in words: torchvision's layout, one folder per dataset."""
    idx = ", ".join(f"{folder}/raw/" for folder in IDX_FOLDERS.values())
    return f"torchvision's layout ({idx}, {CIFAR_PY_FOLDER}/ or {CIFAR_BIN_FOLDER}/)"


def check_root_exists(root: Path) -> Path:
    """``root`` if it is a folder; :class:`DatasetNotFoundError` naming it and the expected layout otherwise."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"data root {root} does not exist or is not a folder; expected a folder in "
                                   f"{layout()}, or pass download=True (command line: --download) to fetch into it")
    return root
