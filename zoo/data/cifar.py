"""CIFAR-10 readers: the python version (pickled batches) and the binary version (fixed-size records).

Layouts (torchvision's / the official tarballs'):

* ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``: Python-2 pickles (protocol
  2) of dicts with ``b"data"`` (uint8 ``[10000, 3072]``, each row a CHW-flattened 3x32x32 image),
  ``b"labels"`` (list of int), ``b"batch_label"``, ``b"filenames"``. They are loaded with a restricted
  unpickler that only resolves numpy's array reconstruction (never ``pickle.load``), with
  ``encoding="bytes"`` like the official loader. Verified against torchvision's MD5s.
* ``root/cifar-10-batches-bin/{data_batch_1..5.bin, test_batch.bin, batches.meta.txt}``: 10000 records
  of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32, row-major). Verified against the official
  MD5s of the extracted files, then checked for structure (size ``10000 * 3073``, labels in range).

When both versions are present the python one is used.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

try:  # numpy >= 1.26 / 2.x; pickles may name it numpy.core.multiarray (numpy 1.x, Python 2)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - older numpy
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

from zoo.data import fetch
from zoo.data.catalog import (
    CIFAR_BIN_FILES,
    CIFAR_BIN_FOLDER,
    CIFAR_BIN_MD5,
    CIFAR_PY_FILES,
    CIFAR_PY_FOLDER,
    CIFAR_PY_MD5,
    CIFAR_PY_TARBALL,
    CIFAR_RECORD_BYTES,
    CIFAR_RECORDS_PER_FILE,
    DATASETS,
)
from zoo.errors import DataFormatError, DatasetNotFoundError, UnsafePickleError

_PIXELS = 3 * 32 * 32
_NUM_CLASSES = DATASETS["cifar10"].num_classes

#: The only globals a CIFAR-10 batch pickle needs: numpy's ndarray reconstruction.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's ``_reconstruct``, ``ndarray`` and ``dtype``.

    Any other global (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafePickleError` before
    it is looked up, so nothing it names is imported or called.
    """

    def __init__(self, file: BinaryIO, *, source: str = "<pickle>") -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed numpy global; refuse everything else."""
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS)
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {module}.{name}: a CIFAR-10 batch only needs "
                f"numpy arrays ({allowed}). The file is not an official CIFAR-10 batch."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids never occur in CIFAR-10 batches: refuse them."""
        raise UnsafePickleError(f"{self._source}: refusing persistent id {pid!r}")


def restricted_loads(data: bytes, *, source: str = "<pickle>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (``encoding="bytes"``)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=source).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # malformed pickles raise all sorts: UnpicklingError, EOFError, ValueError...
        raise DataFormatError(f"{source}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e})") from e


def _get(d: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DataFormatError(f"{path}: no {key!r} entry (keys: {sorted(map(repr, d))})")


def read_python_batch(path: Path, *, md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one python-version batch: ``(uint8 [n, 3072], int64 [n])``; with ``md5``, check it first."""
    if md5 is not None:
        fetch.verify_file_digest(path, "md5", md5)  # before unpickling anything
    obj = restricted_loads(path.read_bytes(), source=str(path))
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    data, labels = _get(obj, "data", path), _get(obj, "labels", path)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == _PIXELS):
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise DataFormatError(f"{path}: 'data' should be uint8 [n, {_PIXELS}], found {dtype} {shape}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataFormatError(f"{path}: 'labels' is not a list of integers ({e})") from e
    if y.shape != (data.shape[0],):
        raise DataFormatError(f"{path}: {data.shape[0]} images but labels of shape {y.shape}")
    _check_labels(y, path)
    return data, y


def read_binary_batch(path: Path, *, limit: int | None = None,
                      md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read the first ``limit`` records (all when ``None``) of a binary-version batch; with ``md5``, check the
    whole file's MD5 first.

    Returns ``(uint8 [n, 3072], int64 [n])``. The file must be exactly ``10000 * 3073`` bytes.
    """
    if md5 is not None:
        fetch.verify_file_digest(path, "md5", md5)
    size = os.path.getsize(path)
    expected = CIFAR_RECORDS_PER_FILE * CIFAR_RECORD_BYTES
    if size != expected:
        raise DataFormatError(
            f"{path}: {size} bytes, a CIFAR-10 binary batch is {expected} "
            f"({CIFAR_RECORDS_PER_FILE} records of {CIFAR_RECORD_BYTES} bytes)"
        )
    n = CIFAR_RECORDS_PER_FILE if limit is None else min(limit, CIFAR_RECORDS_PER_FILE)
    records = np.fromfile(path, dtype=np.uint8, count=n * CIFAR_RECORD_BYTES).reshape(n, CIFAR_RECORD_BYTES)
    y = records[:, 0].astype(np.int64)
    _check_labels(y, path)
    return records[:, 1:], y


def _check_labels(y: np.ndarray, path: Path) -> None:
    if y.size and (int(y.min()) < 0 or int(y.max()) >= _NUM_CLASSES):
        raise DataFormatError(f"{path}: labels out of range 0..{_NUM_CLASSES - 1} "
                              f"(found {int(y.min())}..{int(y.max())})")


def split_paths(root: Path, split: str) -> tuple[list[Path], list[Path]]:
    """The python-version and binary-version files of ``split`` under ``root``."""
    py = [root / CIFAR_PY_FOLDER / f for f in CIFAR_PY_FILES[split]]
    bn = [root / CIFAR_BIN_FOLDER / f for f in CIFAR_BIN_FILES[split]]
    return py, bn


def load_cifar10_split(
    split: str, root: Path, *, download: bool, verify: bool, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a CIFAR-10 split as ``(uint8 [N,3,32,32], int64 [N])`` from either on-disk version."""
    py, bn = split_paths(root, split)
    if all(p.is_file() for p in py):
        fmt = "python"
    elif all(p.is_file() for p in bn):
        fmt = "binary"
    elif download:
        fetch.download_cifar10(root, verify=verify)
        fmt = "python"
        absent = [str(p) for p in py if not p.is_file()]
        if absent:
            raise DataFormatError(
                f"{root / CIFAR_PY_TARBALL} was extracted but lacks: {', '.join(absent)}"
            )
    else:
        looked = [str(p) for p in py + bn if not p.is_file()]
        url = fetch.official_urls("cifar10", CIFAR_PY_TARBALL)[0]
        raise DatasetNotFoundError(
            f"cifar10 {split} split not found under {root}; missing:\n  " + "\n  ".join(looked)
            + "\nEither version (python or binary) is enough. Pass download=True (command line: --download) "
            + f"to fetch {url} "
            f"and extract it there, or extract that tarball into {root} yourself; "
            "root= or $ZOO_DATA_ROOT selects another data folder."
        )
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    remaining = limit
    for path in py if fmt == "python" else bn:
        if remaining == 0:
            break
        if fmt == "python":
            x, y = read_python_batch(path, md5=CIFAR_PY_MD5[path.name] if verify else None)
            if remaining is not None:
                x, y = x[:remaining], y[:remaining]
        else:
            x, y = read_binary_batch(path, limit=remaining, md5=CIFAR_BIN_MD5[path.name] if verify else None)
        images.append(x)
        labels.append(y)
        if remaining is not None:
            remaining -= len(y)
    if images:
        x_all = np.concatenate(images)  # a fresh contiguous array
        y_all = np.concatenate(labels)
    else:
        x_all = np.empty((0, _PIXELS), np.uint8)
        y_all = np.empty((0,), np.int64)
    return torch.from_numpy(x_all.reshape(-1, 3, 32, 32)), torch.from_numpy(y_all)
