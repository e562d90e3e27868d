"""Generate fake CIFAR-10 files in the exact formats of the official releases.

* Python version: pickles as Python 2's cPickle wrote them (protocol 2): byte strings as
  ``SHORT_BINSTRING`` / ``BINSTRING`` (so ``pickle.load(f, encoding="bytes")`` gives bytes keys),
  numpy arrays as ``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')`` + ``BUILD``
  with state ``(1, shape, dtype('u1', 0, 1), False, raw bytes)``. Written opcode by opcode, because
  Python 3's pickler would encode bytes through ``_codecs.encode`` at protocol 2.
* Binary version: 10000 records of 1 label byte + 3072 pixel bytes (R, G, B planes, row-major).

The content is random but reproducible from a seed; :func:`make_cifar10` returns the expected
tensors so tests can compare the readers' output against them.
"""
from __future__ import annotations

import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RECORDS = 10_000
PIXELS = 3 * 32 * 32
LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"


class Py2PickleWriter:
    """Minimal writer of Python-2-style protocol-2 pickles for dicts/lists/tuples/ints/bytes/None/uint8 arrays."""

    def __init__(self, numpy_module: str = "numpy.core.multiarray") -> None:
        self.numpy_module = numpy_module  # where _reconstruct is said to live
        self.out: list[bytes] = []

    def dumps(self, obj: Any) -> bytes:
        self.out = [pickle.PROTO + b"\x02"]
        self.save(obj)
        self.out.append(pickle.STOP)
        return b"".join(self.out)

    def w(self, b: bytes) -> None:
        self.out.append(b)

    def save(self, obj: Any) -> None:
        if obj is None:
            self.w(pickle.NONE)
        elif isinstance(obj, bool):
            self.w(pickle.NEWTRUE if obj else pickle.NEWFALSE)
        elif isinstance(obj, (int, np.integer)):
            self.save_int(int(obj))
        elif isinstance(obj, bytes):
            self.save_str(obj)
        elif isinstance(obj, str):  # a Python 2 str is bytes
            self.save_str(obj.encode("latin-1"))
        elif isinstance(obj, tuple):
            self.save_tuple(obj)
        elif isinstance(obj, list):
            self.w(pickle.EMPTY_LIST)
            for i in range(0, len(obj), 1000):  # cPickle batches APPENDS by 1000
                self.w(pickle.MARK)
                for item in obj[i : i + 1000]:
                    self.save(item)
                self.w(pickle.APPENDS)
        elif isinstance(obj, dict):
            self.w(pickle.EMPTY_DICT)
            items = list(obj.items())
            for i in range(0, len(items), 1000):
                self.w(pickle.MARK)
                for k, v in items[i : i + 1000]:
                    self.save(k)
                    self.save(v)
                self.w(pickle.SETITEMS)
        elif isinstance(obj, np.ndarray):
            self.save_array(obj)
        else:
            raise TypeError(f"cannot write {type(obj).__name__}")

    def save_int(self, v: int) -> None:
        if 0 <= v < 256:
            self.w(pickle.BININT1 + bytes([v]))
        elif 0 <= v < 65536:
            self.w(pickle.BININT2 + struct.pack("<H", v))
        else:
            self.w(pickle.BININT + struct.pack("<i", v))

    def save_str(self, b: bytes) -> None:
        if len(b) < 256:
            self.w(pickle.SHORT_BINSTRING + bytes([len(b)]) + b)
        else:
            self.w(pickle.BINSTRING + struct.pack("<i", len(b)) + b)

    def save_tuple(self, t: tuple) -> None:
        if 1 <= len(t) <= 3:
            for item in t:
                self.save(item)
            self.w({1: pickle.TUPLE1, 2: pickle.TUPLE2, 3: pickle.TUPLE3}[len(t)])
        else:
            self.w(pickle.MARK)
            for item in t:
                self.save(item)
            self.w(pickle.TUPLE)

    def global_(self, module: str, name: str) -> None:
        self.w(pickle.GLOBAL + f"{module}\n{name}\n".encode())

    def save_array(self, a: np.ndarray) -> None:
        assert a.dtype == np.uint8
        a = np.ascontiguousarray(a)
        self.global_(self.numpy_module, "_reconstruct")
        self.global_("numpy", "ndarray")
        self.save_tuple((0,))
        self.save_str(b"b")
        self.w(pickle.TUPLE3 + pickle.REDUCE)
        self.w(pickle.MARK)
        self.save_int(1)
        self.save_tuple(tuple(a.shape))
        # dtype('u1', 0, 1) then BUILD (3, '|', None, None, None, -1, -1, 0)
        self.global_("numpy", "dtype")
        self.save_tuple(("u1", 0, 1))
        self.w(pickle.REDUCE)
        self.w(pickle.MARK)
        for v in (3, b"|", None, None, None):
            self.save(v)
        self.w(pickle.BININT + struct.pack("<i", -1))
        self.w(pickle.BININT + struct.pack("<i", -1))
        self.save_int(0)
        self.w(pickle.TUPLE + pickle.BUILD)
        self.w(pickle.NEWFALSE)
        self.save_str(a.tobytes())
        self.w(pickle.TUPLE + pickle.BUILD)


def py2_pickle(obj: Any, numpy_module: str = "numpy.core.multiarray") -> bytes:
    """Bytes of ``obj`` pickled the way Python 2 + numpy 1.x wrote the official CIFAR-10 batches."""
    return Py2PickleWriter(numpy_module).dumps(obj)


@dataclass
class FakeCifar:
    """Expected content of generated files: images uint8 [N, 3, 32, 32], labels int64 [N] per split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def random_content(seed: int, n_train: int = 5 * RECORDS, n_test: int = RECORDS) -> FakeCifar:
    """Reproducible random CIFAR-shaped content; test image 7 gets a known hand-made pattern."""
    rng = np.random.default_rng(seed)
    fc = FakeCifar(
        rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.int64),
        rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.int64),
    )
    # Hand-made pattern, independent of the flattening logic: R plane 10, G plane 20, B plane 30,
    # except pixel (channel 1, row 5, column 9) = 200, i.e. flat index 1*1024 + 5*32 + 9.
    fc.test_images[7] = np.array([10, 20, 30], np.uint8)[:, None, None]
    fc.test_images[7, 1, 5, 9] = 200
    fc.test_labels[7] = 4
    return fc


def _batches(fc: FakeCifar) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for i, name in enumerate(TRAIN_FILES):
        sl = slice(i * RECORDS, (i + 1) * RECORDS)
        out[name] = (fc.train_images[sl], fc.train_labels[sl])
    out[TEST_FILE] = (fc.test_images, fc.test_labels)
    return out


def write_python_version(root: Path, fc: FakeCifar, *, numpy_module: str = "numpy.core.multiarray",
                         only: list[str] | None = None) -> Path:
    """Write ``root/cifar-10-batches-py/`` (the batches named in ``only``, default all, + batches.meta)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in _batches(fc).items():
        if only is not None and name not in only:
            continue
        n = len(labels)
        batch_label = "testing batch 1 of 1" if name == TEST_FILE else f"training batch {name[-1]} of 5"
        d = {
            b"batch_label": batch_label.encode(),
            b"labels": [int(v) for v in labels],
            b"data": images.reshape(n, PIXELS),
            b"filenames": [f"fake_{name}_{i:05d}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(py2_pickle(d, numpy_module))
    meta = {b"num_cases_per_batch": RECORDS, b"label_names": LABEL_NAMES, b"num_vis": PIXELS}
    (folder / "batches.meta").write_bytes(py2_pickle(meta, numpy_module))
    return folder


def write_binary_version(root: Path, fc: FakeCifar, *, only: list[str] | None = None) -> Path:
    """Write ``root/cifar-10-batches-bin/`` (``<batch>.bin`` for the batches in ``only``, + batches.meta.txt)."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in _batches(fc).items():
        if only is not None and name not in only:
            continue
        n = len(labels)
        records = np.empty((n, 1 + PIXELS), np.uint8)
        records[:, 0] = labels
        records[:, 1:] = images.reshape(n, PIXELS)  # R plane, G plane, B plane, each row-major
        records.tofile(folder / f"{name}.bin")
    (folder / "batches.meta.txt").write_text("\n".join(n.decode() for n in LABEL_NAMES) + "\n\n")
    return folder


def write_python_tarball(dest: Path, python_folder: Path, *, compresslevel: int = 1) -> Path:
    """Pack ``python_folder`` as ``cifar-10-batches-py/...`` into the gzipped tarball ``dest``."""
    with tarfile.open(dest, "w:gz", compresslevel=compresslevel) as tf:
        tf.add(python_folder, arcname="cifar-10-batches-py")
    return dest
