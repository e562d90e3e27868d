"""What the zoo knows about each dataset: shapes, statistics, class names, files, official hashes, URLs.

Checksums:

* MNIST / Fashion-MNIST: SHA-256 of the *uncompressed* IDX files of the official releases (so a raw
  file and any gzip of it verify alike). They equal the values
  in the ``SHA256SUMS`` file of the project's shared dataset folder.
* CIFAR-10, python version: torchvision's MD5s of the pickled batches, and of the release tarball.
* CIFAR-10, binary version: the official MD5s of the extracted ``.bin`` files (published beside
  ``cifar-10-binary.tar.gz``), and the binary tarball's MD5 when it is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset (shapes, per-channel statistics, class names, split sizes, the name people
    write it with, and its Hugging Face Hub dataset id for model cards)."""

    name: str
    title: str
    hf_dataset: str
    in_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    n_train: int
    n_test: int


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        hf_dataset="ylecun/mnist",
        in_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
        classes=tuple(str(i) for i in range(10)),
        n_train=60_000,
        n_test=10_000,
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        title="Fashion-MNIST",
        hf_dataset="zalando-datasets/fashion_mnist",
        in_shape=(1, 28, 28),
        num_classes=10,
        mean=(0.2860,),
        std=(0.3530,),
        classes=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        n_train=60_000,
        n_test=10_000,
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        hf_dataset="uoft-cs/cifar10",
        in_shape=(3, 32, 32),
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        classes=(
            "airplane", "automobile", "bird", "cat", "deer",
            "dog", "frog", "horse", "ship", "truck",
        ),
        n_train=50_000,
        n_test=10_000,
    ),
}

SPLITS: tuple[str, ...] = ("train", "test")

# ---------------------------------------------------------------- MNIST / Fashion-MNIST (IDX)

#: torchvision's folder name under the data root.
IDX_FOLDERS: dict[str, str] = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}

#: (images file, labels file) per split; the same names for MNIST and Fashion-MNIST.
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: SHA-256 of the uncompressed official files.
IDX_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    "fashion_mnist": {
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
}

#: Official mirrors, tried in order; each serves ``<file>.gz``.
IDX_MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# ---------------------------------------------------------------- CIFAR-10

CIFAR_PY_FOLDER = "cifar-10-batches-py"
CIFAR_BIN_FOLDER = "cifar-10-batches-bin"

CIFAR_PY_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR_BIN_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}

#: torchvision's MD5s of the python-version batches.
CIFAR_PY_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

#: Official MD5s of the binary-version batches, as extracted from cifar-10-binary.tar.gz.
CIFAR_BIN_MD5: dict[str, str] = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}

CIFAR_RECORDS_PER_FILE = 10_000
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32  # label byte + R, G, B planes

CIFAR_PY_TARBALL = "cifar-10-python.tar.gz"
CIFAR_PY_TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_BIN_TARBALL = "cifar-10-binary.tar.gz"
CIFAR_BIN_TARBALL_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR_MIRRORS: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)

#: Environment variable that replaces every official mirror by one base URL; files are then fetched
#: from ``$ZOO_DATA_MIRROR/<dataset name>/<file>`` (e.g. ``.../mnist/t10k-images-idx3-ubyte.gz``).
MIRROR_ENV = "ZOO_DATA_MIRROR"


def dataset_info(dataset: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``dataset``; ``ValueError`` naming the accepted names otherwise."""
    try:
        return DATASETS[dataset]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {dataset!r}; accepted: {', '.join(sorted(DATASETS))}"
        ) from None


def check_split(split: str) -> str:
    """Return ``split`` if it is ``"train"`` or ``"test"``; ``ValueError`` naming both otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(SPLITS)}")
    return split
