"""Tests of zoo.data: real files, real HTTP on loopback, no mocks.

MNIST / Fashion-MNIST tests read the real datasets from ``$ZOO_DATA_ROOT`` (torchvision layout; in CI
it points at ``shared/datasets``) and are skipped when it is unset. CIFAR-10 tests use files generated
in the official formats by ``cifar_files.py``.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import cifar_files`

import cifar_files as cf  # noqa: E402
from datasets import root_with  # noqa: E402

from zoo.data import (  # noqa: E402  # noqa: E402
    DATASETS,
    DataFormatError,
    DatasetInfo,
    UnsafeArchiveError,
    UnsafePickleError,
    checksums,  # noqa: E402
    default_data_root,
    load_split,
)
from zoo.data.bundle import BUNDLED_DIR  # noqa: E402
from zoo.data.catalog import CIFAR_BIN_MD5, CIFAR_PY_MD5, IDX_SHA256  # noqa: E402
from zoo.data.cifar import restricted_loads  # noqa: E402
from zoo.data.fetch import safe_extract  # noqa: E402
from zoo.errors import ChecksumError, DatasetNotFoundError, DownloadError, ZooError  # noqa: E402

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def _no_mirror_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that need a mirror set ZOO_DATA_MIRROR themselves."""
    monkeypatch.delenv("ZOO_DATA_MIRROR", raising=False)


def raw_file(data_root: Path, dataset: str, name: str) -> Path:
    return data_root / FOLDER[dataset] / "raw" / name


def make_raw_dir(root: Path, dataset: str = "mnist") -> Path:
    d = root / FOLDER[dataset] / "raw"
    d.mkdir(parents=True, exist_ok=True)
    return d


def gzip_to(src_bytes: bytes, dest: Path) -> Path:
    dest.write_bytes(gzip.compress(src_bytes, compresslevel=1))
    return dest


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """A real threaded http.server on 127.0.0.1 serving ``directory``; yields (base URL, request paths)."""
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def real_files(folder: Path) -> set[str]:
    """Names in ``folder``, ignoring download lock files."""
    return {p.name for p in folder.iterdir() if not p.name.endswith(".lock")}


# ------------------------------------------------------------------------------------ catalog, roots


def test_catalog() -> None:
    assert set(DATASETS) == {"mnist", "fashion_mnist", "cifar10"}
    m, f, c = DATASETS["mnist"], DATASETS["fashion_mnist"], DATASETS["cifar10"]
    assert isinstance(m, DatasetInfo) and m.name == "mnist"
    assert m.in_shape == f.in_shape == (1, 28, 28) and c.in_shape == (3, 32, 32)
    assert m.mean == (0.1307,) and m.std == (0.3081,)
    assert f.mean == (0.2860,) and f.std == (0.3530,)
    assert c.mean == (0.4914, 0.4822, 0.4465) and c.std == (0.2470, 0.2435, 0.2616)
    for info in (m, f, c):
        assert info.num_classes == len(info.classes) == 10
        assert len(info.mean) == len(info.std) == info.in_shape[0]
        assert info.n_test == 10_000
    assert (m.n_train, f.n_train, c.n_train) == (60_000, 60_000, 50_000)
    assert c.classes[0] == "airplane" and f.classes[9] == "Ankle boot"
    with pytest.raises(Exception):
        m.name = "x"  # type: ignore[misc]  # frozen


def test_unknown_dataset_split_and_bad_limit(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as e:
        load_split("imagenet", "test", tmp_path)
    assert all(n in str(e.value) for n in ("mnist", "fashion_mnist", "cifar10", "imagenet"))
    with pytest.raises(ValueError) as e:
        load_split("mnist", "valid", tmp_path)
    assert "train" in str(e.value) and "test" in str(e.value) and "valid" in str(e.value)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="limit"):
            load_split("mnist", "test", tmp_path, limit=bad)  # type: ignore[arg-type]


def test_default_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path / "explicit"))
    assert default_data_root() == tmp_path / "explicit"
    monkeypatch.delenv("ZOO_DATA_ROOT")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_root() == tmp_path / "xdg" / "bioplausible-zoo" / "datasets"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for xdg in (None, "", "relative/cache"):
        if xdg is None:
            monkeypatch.delenv("XDG_CACHE_HOME")
        else:
            monkeypatch.setenv("XDG_CACHE_HOME", xdg)
        assert default_data_root() == tmp_path / "home" / ".cache" / "bioplausible-zoo" / "datasets"


def test_root_none_uses_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        load_split("fashion_mnist", "test")
    assert str(tmp_path / "FashionMNIST" / "raw" / TEST_IMAGES) in str(e.value)


def test_an_explicit_root_is_used_as_given(tmp_path: Path) -> None:
    """The bundled MNIST test split stands in only for the default root: a root given explicitly that does not
    exist, or lacks the files, is an error naming it (not the bundled copy)."""
    absent = tmp_path / "no-such-folder"
    with pytest.raises(DatasetNotFoundError) as e:
        load_split("mnist", "test", absent)
    message = str(e.value)
    assert str(absent) in message and "MNIST/raw/" in message and "cifar-10-batches-py/" in message
    assert "\n" not in message and not absent.exists()
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "MNIST" / "raw" / TEST_IMAGES)):
        load_split("mnist", "test", tmp_path)  # exists, holds nothing


# ------------------------------------------------------------------------------------ MNIST / Fashion-MNIST


def test_mnist_test_split(data_root: Path) -> None:
    x, y = load_split("mnist", "test", data_root)
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.uint8 and x.is_contiguous()
    assert y.shape == (10_000,) and y.dtype == torch.int64
    assert int(y.min()) == 0 and int(y.max()) == 9
    counts = torch.bincount(y, minlength=10).tolist()
    assert counts[0] == 980 and counts[1] == 1135
    assert counts == MNIST_TEST_COUNTS
    # Pixels are where the raw file says: byte 16 + i*784 + r*28 + c.
    raw = raw_file(data_root, "mnist", TEST_IMAGES).read_bytes()
    assert int(x[123, 0, 14, 9]) == raw[16 + 123 * 784 + 14 * 28 + 9]
    assert int(y[0]) == raw_file(data_root, "mnist", TEST_LABELS).read_bytes()[8] == 7


def test_fashion_mnist_test_split(data_root: Path) -> None:
    x, y = load_split("fashion_mnist", "test", data_root)
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.uint8 and x.is_contiguous()
    assert y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [1000] * 10


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_train_split_counts_and_statistics(data_root: Path, dataset: str) -> None:
    x, y = load_split(dataset, "train", data_root)
    assert x.shape == (60_000, 1, 28, 28) and x.dtype == torch.uint8 and x.is_contiguous()
    expected = MNIST_TRAIN_COUNTS if dataset == "mnist" else [6000] * 10
    assert torch.bincount(y, minlength=10).tolist() == expected
    # DATASETS' mean / std are those of the train split on [0, 1]; exact via the pixel histogram.
    hist = np.bincount(x.numpy().ravel(), minlength=256).astype(np.float64)
    v = np.arange(256) / 255.0
    mean = float((hist * v).sum() / hist.sum())
    std = float(np.sqrt((hist * (v - mean) ** 2).sum() / hist.sum()))
    info = DATASETS[dataset]
    assert mean == pytest.approx(info.mean[0], abs=5e-5)
    assert std == pytest.approx(info.std[0], abs=5e-5)


def test_limit_keeps_first_samples(data_root: Path) -> None:
    x, y = load_split("fashion_mnist", "test", data_root)
    for verify in (True, False):
        xs, ys = load_split("fashion_mnist", "test", data_root, limit=100, verify=verify)
        assert xs.shape == (100, 1, 28, 28) and xs.is_contiguous()
        assert torch.equal(xs, x[:100]) and torch.equal(ys, y[:100])
    x0, y0 = load_split("mnist", "train", data_root, limit=0)
    assert x0.shape == (0, 1, 28, 28) and y0.shape == (0,)
    xb, _ = load_split("mnist", "test", data_root, limit=10**9)
    assert xb.shape[0] == 10_000


def test_gzipped_copy_gives_identical_tensors(data_root: Path, tmp_path: Path) -> None:
    raw_dir = make_raw_dir(tmp_path)
    for name in (TEST_IMAGES, TEST_LABELS):
        gzip_to(raw_file(data_root, "mnist", name).read_bytes(), raw_dir / f"{name}.gz")
    x_raw, y_raw = load_split("mnist", "test", data_root)
    x_gz, y_gz = load_split("mnist", "test", tmp_path)  # verified: SHA-256 of the uncompressed content
    assert torch.equal(x_raw, x_gz) and torch.equal(y_raw, y_gz)
    x_lim, _ = load_split("mnist", "test", tmp_path, limit=50, verify=False)
    assert torch.equal(x_lim, x_raw[:50])
    # Mixed: labels uncompressed, images gzipped.
    shutil.copyfile(raw_file(data_root, "mnist", TEST_LABELS), raw_dir / TEST_LABELS)
    (raw_dir / f"{TEST_LABELS}.gz").unlink()
    x_mix, y_mix = load_split("mnist", "test", tmp_path)
    assert torch.equal(x_mix, x_raw) and torch.equal(y_mix, y_raw)


@pytest.mark.parametrize("compressed", [False, True])
def test_corrupted_byte_raises_checksum_error(data_root: Path, tmp_path: Path, compressed: bool) -> None:
    raw_dir = make_raw_dir(tmp_path, "fashion_mnist")
    data = bytearray(raw_file(data_root, "fashion_mnist", TEST_IMAGES).read_bytes())
    data[16 + 5 * 784 + 300] ^= 0xFF  # one pixel of image 5
    bad = raw_dir / (TEST_IMAGES + (".gz" if compressed else ""))
    if compressed:
        gzip_to(bytes(data), bad)
    else:
        bad.write_bytes(data)
    shutil.copyfile(raw_file(data_root, "fashion_mnist", TEST_LABELS), raw_dir / TEST_LABELS)
    with pytest.raises(ChecksumError) as e:
        load_split("fashion_mnist", "test", tmp_path)
    msg = str(e.value)
    assert str(bad) in msg
    assert IDX_SHA256["fashion_mnist"][TEST_IMAGES] in msg
    assert hashlib.sha256(bytes(data)).hexdigest() in msg
    assert "verify=False" in msg
    with pytest.raises(ChecksumError):  # also when only a prefix is asked for
        load_split("fashion_mnist", "test", tmp_path, limit=3)
    x, _ = load_split("fashion_mnist", "test", tmp_path, verify=False)
    good, _ = load_split("fashion_mnist", "test", data_root)
    diff = (x != good).nonzero().tolist()
    assert diff == [[5, 0, 300 // 28, 300 % 28]]


@pytest.mark.parametrize("gz", [False, True])
def test_a_header_claiming_millions_of_images_allocates_nothing(gz: bool, data_root: Path, tmp_path: Path) -> None:
    """A 7.8 MB file whose header claims 3,000,000 images (2.4 GB) is refused with the claim and the real size, without
    allocating what the header claims."""
    import struct
    import tracemalloc

    raw_dir = make_raw_dir(tmp_path)
    images = raw_file(data_root, "mnist", TEST_IMAGES).read_bytes()
    (raw_dir / TEST_LABELS).write_bytes(raw_file(data_root, "mnist", TEST_LABELS).read_bytes())
    forged = images[:4] + struct.pack(">I", 3_000_000) + images[8:]
    if gz:
        gzip_to(forged, raw_dir / f"{TEST_IMAGES}.gz")
    else:
        (raw_dir / TEST_IMAGES).write_bytes(forged)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as e:
            load_split("mnist", "test", tmp_path, verify=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(e.value)
    assert TEST_IMAGES in message and "3000000 items" in message
    assert str(len(forged) - 16) in message or str(len(forged)) in message, message
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB for a claim of 2.4 GB"


def test_wrong_magic_and_truncation_are_clear_errors(data_root: Path, tmp_path: Path) -> None:
    raw_dir = make_raw_dir(tmp_path)
    images = raw_file(data_root, "mnist", TEST_IMAGES).read_bytes()
    labels = raw_file(data_root, "mnist", TEST_LABELS).read_bytes()
    (raw_dir / TEST_LABELS).write_bytes(labels)
    (raw_dir / TEST_IMAGES).write_bytes(b"\x00\x00\x08\x04" + images[4:])
    for verify in (True, False):
        with pytest.raises(DataFormatError) as e:
            load_split("mnist", "test", tmp_path, verify=verify)
        assert "magic" in str(e.value) and "0x00000804" in str(e.value) and "0x00000803" in str(e.value)
        assert str(raw_dir / TEST_IMAGES) in str(e.value)
    # A labels file where the images file should be.
    (raw_dir / TEST_IMAGES).write_bytes(labels)
    with pytest.raises(DataFormatError, match="magic number 0x00000801, expected 0x00000803"):
        load_split("mnist", "test", tmp_path)
    # Truncated, raw and gzipped.
    (raw_dir / TEST_IMAGES).write_bytes(images[:-1000])
    with pytest.raises(DataFormatError, match="header claims 10000 items of 784 bytes"):
        load_split("mnist", "test", tmp_path)
    with pytest.raises(DataFormatError, match="header"):  # size check even when only a prefix is read
        load_split("mnist", "test", tmp_path, limit=5, verify=False)
    (raw_dir / TEST_IMAGES).unlink()
    gzip_to(images[:-1000], raw_dir / f"{TEST_IMAGES}.gz")
    with pytest.raises(DataFormatError, match="truncated"):
        load_split("mnist", "test", tmp_path, verify=False)
    # Trailing garbage.
    (raw_dir / f"{TEST_IMAGES}.gz").unlink()
    (raw_dir / TEST_IMAGES).write_bytes(images + b"extra")
    with pytest.raises(DataFormatError, match="declares"):
        load_split("mnist", "test", tmp_path, verify=False)
    # Not gzip at all behind a .gz name.
    (raw_dir / TEST_IMAGES).unlink()
    (raw_dir / f"{TEST_IMAGES}.gz").write_bytes(b"this is not gzip data")
    with pytest.raises(DataFormatError, match="gzip"):
        load_split("mnist", "test", tmp_path, verify=False)


def test_missing_files_error_lists_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as e:
        load_split("mnist", "train", tmp_path)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ZooError)
    msg = str(e.value)
    raw = tmp_path / "MNIST" / "raw"
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        assert str(raw / name) in msg and str(raw / f"{name}.gz") in msg
    assert "download=True" in msg and "https://ossci-datasets.s3.amazonaws.com/mnist/" in msg
    with pytest.raises(DatasetNotFoundError) as e:
        load_split("fashion_mnist", "test", tmp_path)
    assert str(tmp_path / "FashionMNIST" / "raw" / f"{TEST_LABELS}.gz") in str(e.value)
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in str(e.value)


def test_bundled_mnist_test_split(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, low, high in ((TEST_IMAGES, 1_500_000, 1_700_000), (TEST_LABELS, 3_000, 6_000)):
        gz = BUNDLED_DIR / f"{name}.gz"
        blob = gz.read_bytes()
        assert low < len(blob) < high, (gz, len(blob))
        assert blob[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no FNAME (no file name stored)
        assert blob[4:8] == b"\x00\x00\x00\x00"  # mtime 0: reproducible bytes
        assert gzip.decompress(blob) == raw_file(data_root, "mnist", name).read_bytes()
    x_r, y_r = load_split("mnist", "test", data_root)
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path))
    x_b, y_b = load_split("mnist", "test")  # an empty default root: the bundled copy
    assert torch.equal(x_b, x_r) and torch.equal(y_b, y_r)
    assert not any(tmp_path.iterdir())  # nothing written to the root


def test_verification_is_memoised(data_root: Path, tmp_path: Path) -> None:
    raw_dir = make_raw_dir(tmp_path)
    for name in (TEST_IMAGES, TEST_LABELS):
        shutil.copyfile(raw_file(data_root, "mnist", name), raw_dir / name)
    before = checksums.cache_info()
    load_split("mnist", "test", tmp_path)
    first = checksums.cache_info()
    assert first["misses"] - before["misses"] == 2
    load_split("mnist", "test", tmp_path)
    second = checksums.cache_info()
    assert second["misses"] == first["misses"] and second["hits"] - first["hits"] == 2
    # Any change of the file (here its mtime) means hashing again.
    st = (raw_dir / TEST_IMAGES).stat()
    os.utime(raw_dir / TEST_IMAGES, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_split("mnist", "test", tmp_path)
    assert checksums.cache_info()["misses"] - second["misses"] == 1


# ------------------------------------------------------------------------------------ CIFAR-10


@pytest.fixture(scope="session")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Fake CIFAR-10 in both official formats: roots with the python version, the binary one, both."""
    base = tmp_path_factory.mktemp("cifar")
    fc = cf.random_content(seed=20240601)
    py_folder = cf.write_python_version(base / "gen", fc)
    bin_folder = cf.write_binary_version(base / "gen", fc)
    roots = {k: base / k for k in ("py", "bin", "both")}
    for r in roots.values():
        r.mkdir()
    (roots["py"] / py_folder.name).symlink_to(py_folder)
    (roots["bin"] / bin_folder.name).symlink_to(bin_folder)
    (roots["both"] / py_folder.name).symlink_to(py_folder)
    other = cf.random_content(seed=7, n_train=0)
    cf.write_binary_version(roots["both"], other, only=["test_batch"])
    return {"fc": fc, "other": other, **roots}


@pytest.mark.parametrize("fmt", ["py", "bin"])
def test_cifar_readers_return_known_tensors(cifar: dict[str, Any], fmt: str) -> None:
    fc: cf.FakeCifar = cifar["fc"]
    x, y = load_split("cifar10", "test", cifar[fmt], verify=False)
    assert x.shape == (10_000, 3, 32, 32) and x.dtype == torch.uint8 and x.is_contiguous()
    assert y.shape == (10_000,) and y.dtype == torch.int64
    assert np.array_equal(x.numpy(), fc.test_images) and np.array_equal(y.numpy(), fc.test_labels)
    # The hand-made image: planes R=10, G=20, B=30, pixel [c=1, h=5, w=9] = 200.
    assert int(x[7, 0, 0, 0]) == 10 and int(x[7, 2, 31, 31]) == 30 and int(x[7, 1, 5, 8]) == 20
    assert int(x[7, 1, 5, 9]) == 200 and int(y[7]) == 4
    assert int((x[7] == 200).sum()) == 1
    xt, yt = load_split("cifar10", "train", cifar[fmt], verify=False)
    assert xt.shape == (50_000, 3, 32, 32) and xt.is_contiguous()
    assert np.array_equal(xt.numpy(), fc.train_images) and np.array_equal(yt.numpy(), fc.train_labels)
    xl, yl = load_split("cifar10", "train", cifar[fmt], verify=False, limit=12_345)  # spans two batches
    assert torch.equal(xl, xt[:12_345]) and torch.equal(yl, yt[:12_345])


def test_cifar_prefers_python_version(cifar: dict[str, Any]) -> None:
    x, y = load_split("cifar10", "test", cifar["both"], verify=False)
    assert np.array_equal(x.numpy(), cifar["fc"].test_images)
    assert not np.array_equal(x.numpy(), cifar["other"].test_images)


def test_cifar_generated_files_fail_official_checksum(cifar: dict[str, Any]) -> None:
    path = cifar["py"] / "cifar-10-batches-py" / "test_batch"
    with pytest.raises(ChecksumError) as e:
        load_split("cifar10", "test", cifar["py"])
    msg = str(e.value)
    assert str(path) in msg and CIFAR_PY_MD5["test_batch"] in msg
    assert hashlib.md5(path.read_bytes()).hexdigest() in msg
    with pytest.raises(ChecksumError, match="data_batch_1"):
        load_split("cifar10", "train", cifar["py"], limit=10)
    binary = cifar["bin"] / "cifar-10-batches-bin" / "test_batch.bin"
    with pytest.raises(ChecksumError) as e:
        load_split("cifar10", "test", cifar["bin"], limit=20)
    assert str(binary) in str(e.value) and CIFAR_BIN_MD5["test_batch.bin"] in str(e.value)
    x, _ = load_split("cifar10", "test", cifar["bin"], limit=20, verify=False)
    assert np.array_equal(x.numpy(), cifar["fc"].test_images[:20])


def test_cifar_pickles_match_official_format(tmp_path: Path) -> None:
    fc = cf.random_content(seed=3, n_train=0, n_test=50)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        root = tmp_path / module
        folder = cf.write_python_version(root, fc, numpy_module=module, only=["test_batch"])
        blob = (folder / "test_batch").read_bytes()
        assert blob[:2] == b"\x80\x02"  # protocol 2
        official_style = pickle.loads(blob, encoding="bytes")  # what the official loader does (trusted here)
        assert set(official_style) == {b"batch_label", b"labels", b"data", b"filenames"}
        assert official_style[b"data"].dtype == np.uint8 and official_style[b"data"].shape == (50, 3072)
        restricted = restricted_loads(blob)
        assert np.array_equal(restricted[b"data"], official_style[b"data"])
        assert restricted[b"labels"] == official_style[b"labels"]
        # The python version does not need the other batches for the test split.
        x, y = load_split("cifar10", "test", root, verify=False)
        assert np.array_equal(x.numpy(), fc.test_images) and np.array_equal(y.numpy(), fc.test_labels)


def test_malicious_pickle_is_refused_without_executing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "root" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    payloads = {
        "os.system": f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(),
        "posix.system": pickle.dumps(_Evil(str(marker)), protocol=2),
        "builtins.exec": pickle.dumps(_EvilExec(str(marker)), protocol=4),
    }
    for name, blob in payloads.items():
        assert name.split(".")[1] in blob.decode("latin-1")
        (folder / "test_batch").write_bytes(blob)
        with pytest.raises(UnsafePickleError) as e:
            load_split("cifar10", "test", tmp_path / "root", verify=False)
        assert "refusing" in str(e.value) and name.split(".")[1] in str(e.value)
        assert isinstance(e.value, pickle.UnpicklingError) and isinstance(e.value, ZooError)
        # With verification on, the MD5 check rejects it before any unpickling.
        with pytest.raises(ChecksumError):
            load_split("cifar10", "test", tmp_path / "root")
        assert not marker.exists()
    # Not a pickle at all.
    (folder / "test_batch").write_bytes(b"\x00garbage")
    with pytest.raises(DataFormatError, match="not a readable CIFAR-10 pickle"):
        load_split("cifar10", "test", tmp_path / "root", verify=False)
    # A pickle of the right kind of object but the wrong content.
    (folder / "test_batch").write_bytes(cf.py2_pickle({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataFormatError, match="3072"):
        load_split("cifar10", "test", tmp_path / "root", verify=False)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _EvilExec(_Evil):
    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_cifar_binary_structure_and_missing(cifar: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    src = cifar["bin"] / "cifar-10-batches-bin" / "test_batch.bin"
    (folder / "test_batch.bin").write_bytes(src.read_bytes()[:-3073])
    with pytest.raises(DataFormatError, match="30730000"):
        load_split("cifar10", "test", tmp_path, verify=False)  # generated content: structure checks only
    data = bytearray(src.read_bytes())
    data[3073 * 9] = 10  # label byte of record 9 out of range
    (folder / "test_batch.bin").write_bytes(data)
    with pytest.raises(DataFormatError, match="labels out of range"):
        load_split("cifar10", "test", tmp_path, verify=False)
    empty = tmp_path / "empty"
    empty.mkdir()  # (a root that does not exist at all: test_an_explicit_root_is_used_as_given)
    with pytest.raises(DatasetNotFoundError) as e:
        load_split("cifar10", "train", empty)
    msg = str(e.value)
    assert str(empty / "cifar-10-batches-py" / "data_batch_3") in msg
    assert str(empty / "cifar-10-batches-bin" / "data_batch_5.bin") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg and "download=True" in msg


def test_safe_extract_rejects_escaping_members(tmp_path: Path) -> None:
    def tarball(name: str, build: Any) -> Path:
        path = tmp_path / name
        with tarfile.open(path, "w:gz") as tf:
            build(tf)
        return path

    def add_file(tf: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))

    def add_link(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("cifar-10-batches-py/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)

    dest = tmp_path / "dest"
    cases = {
        "dotdot.tar.gz": lambda tf: add_file(tf, "cifar-10-batches-py/../../escaped.txt"),
        "absolute.tar.gz": lambda tf: add_file(tf, str(tmp_path / "absolute.txt")),
        "link.tar.gz": add_link,
        "other.tar.gz": lambda tf: add_file(tf, "elsewhere/file.txt"),
    }
    for name, build in cases.items():
        with pytest.raises(UnsafeArchiveError):
            safe_extract(tarball(name, build), dest, only="cifar-10-batches-py")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "absolute.txt").exists()
    assert not dest.exists() or not any(dest.iterdir())
    ok = tarball("ok.tar.gz", lambda tf: add_file(tf, "cifar-10-batches-py/a.txt", b"hello"))
    assert safe_extract(ok, dest, only="cifar-10-batches-py") == [dest / "cifar-10-batches-py" / "a.txt"]
    assert (dest / "cifar-10-batches-py" / "a.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in dest.iterdir()) == ["cifar-10-batches-py"]  # staging folder removed


# ------------------------------------------------------------------------------------ download


def test_download_mnist_from_loopback_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The official MNIST test files, from the bundled copy (itself checked against $ZOO_DATA_ROOT in
    # test_bundled_mnist_test_split), re-gzipped differently so the mirror's bytes are not the bundle's.
    official = {name: gzip.decompress((BUNDLED_DIR / f"{name}.gz").read_bytes()) for name in (TEST_IMAGES, TEST_LABELS)}
    mirror = tmp_path / "mirror"
    (mirror / "mnist").mkdir(parents=True)
    for name, content in official.items():
        gzip_to(content, mirror / "mnist" / f"{name}.gz")
    root = tmp_path / "root"
    with serve_directory(mirror) as (base, requests):
        monkeypatch.setenv("ZOO_DATA_MIRROR", base)
        x, y = load_split("mnist", "test", root, download=True)
        assert sorted(requests) == [f"/mnist/{TEST_IMAGES}.gz", f"/mnist/{TEST_LABELS}.gz"]
        raw_dir = root / "MNIST" / "raw"  # torchvision layout: the .gz and the uncompressed file
        assert real_files(raw_dir) == {TEST_IMAGES, TEST_LABELS, f"{TEST_IMAGES}.gz", f"{TEST_LABELS}.gz"}
        assert (raw_dir / TEST_IMAGES).read_bytes() == official[TEST_IMAGES]
        assert (raw_dir / TEST_LABELS).read_bytes() == official[TEST_LABELS]
        monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path / "empty"))
        x_b, y_b = load_split("mnist", "test")  # the bundled copy
        assert torch.equal(x, x_b) and torch.equal(y, y_b)
        assert torch.bincount(y, minlength=10).tolist() == MNIST_TEST_COUNTS
        load_split("mnist", "test", root, download=True)  # present now: no new request
        assert len(requests) == 2


def test_download_rejects_wrong_content_and_reports_http_errors(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "fashion_mnist").mkdir(parents=True)
    data = bytearray(raw_file(data_root, "fashion_mnist", TEST_LABELS).read_bytes())
    data[100] = (data[100] + 1) % 10
    gzip_to(bytes(data), mirror / "fashion_mnist" / f"{TEST_LABELS}.gz")
    gzip_to(raw_file(data_root, "fashion_mnist", TEST_IMAGES).read_bytes(),
            mirror / "fashion_mnist" / f"{TEST_IMAGES}.gz")
    root = tmp_path / "root"
    with serve_directory(mirror) as (base, _):
        monkeypatch.setenv("ZOO_DATA_MIRROR", base + "/")
        with pytest.raises(ChecksumError) as e:
            load_split("fashion_mnist", "test", root, download=True)
        assert IDX_SHA256["fashion_mnist"][TEST_LABELS] in str(e.value)
        raw_dir = root / "FashionMNIST" / "raw"
        assert TEST_LABELS not in real_files(raw_dir) and f"{TEST_LABELS}.gz" not in real_files(raw_dir)
        assert not [p for p in raw_dir.iterdir() if p.name.endswith(".part")]
        # verify=False accepts the (generated) content.
        _, y = load_split("fashion_mnist", "test", root, download=True, verify=False)
        assert int(y[92]) == data[100]
        with pytest.raises(DownloadError, match="404"):
            load_split("fashion_mnist", "train", root, download=True)


def test_download_cifar10_tarball(cifar: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fc = cf.random_content(seed=11, n_train=0, n_test=64)
    folder = cf.write_python_version(tmp_path / "gen", fc, only=["test_batch"])
    (tmp_path / "mirror" / "cifar10").mkdir(parents=True)
    cf.write_python_tarball(tmp_path / "mirror" / "cifar10" / "cifar-10-python.tar.gz", folder)
    with serve_directory(tmp_path / "mirror") as (base, requests):
        monkeypatch.setenv("ZOO_DATA_MIRROR", base)
        # Not the official tarball: refused on MD5 with verification on, nothing extracted.
        strict = tmp_path / "strict"
        with pytest.raises(ChecksumError, match="c58f30108f718f92721af3b95e74349a"):
            load_split("cifar10", "test", strict, download=True)
        assert not (strict / "cifar-10-batches-py").exists()
        root = tmp_path / "root"
        x, y = load_split("cifar10", "test", root, download=True, verify=False)
        assert np.array_equal(x.numpy(), fc.test_images) and np.array_equal(y.numpy(), fc.test_labels)
        assert (root / "cifar-10-python.tar.gz").is_file()
        assert real_files(root / "cifar-10-batches-py") == {"test_batch", "batches.meta"}
        assert requests == ["/cifar10/cifar-10-python.tar.gz"] * 2


def test_download_offline_mode_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.errors import OfflineError

    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("ZOO_DATA_MIRROR", "http://127.0.0.1:9")  # never contacted
    with pytest.raises(OfflineError):
        load_split("fashion_mnist", "test", tmp_path, download=True)
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path))
    x, _ = load_split("mnist", "test")  # the bundled MNIST test split needs no network
    assert x.shape == (10_000, 1, 28, 28)


# ------------------------------------------------------------------------------------ real CIFAR-10


def test_real_cifar10_binary_files_verify_and_read(data_root: Path) -> None:
    """The official binary batches beside the checkout: MD5-verified, 50,000 / 10,000 images, 5,000 / 1,000 per
    class, the first labels of the official release, and the training set's well-known channel means."""
    data_root = root_with("cifar10")
    train_x, train_y = load_split("cifar10", "train", data_root)
    test_x, test_y = load_split("cifar10", "test", data_root)
    assert train_x.shape == (50_000, 3, 32, 32) and test_x.shape == (10_000, 3, 32, 32)
    assert torch.bincount(train_y).tolist() == [5000] * 10 and torch.bincount(test_y).tolist() == [1000] * 10
    assert int(test_y[0]) == 3 and int(train_y[0]) == 6  # "cat", "frog"
    means = train_x.to(torch.float64).div(255.0).mean((0, 2, 3))
    assert torch.allclose(means, torch.tensor([0.4914, 0.4822, 0.4465], dtype=torch.float64), atol=5e-5)
