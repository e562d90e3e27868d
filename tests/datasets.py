"""Where the tests find the real datasets, and what happens when one is missing.

The root is ``$ZOO_DATA_ROOT``, else ``../shared/datasets`` beside the checkout when it exists (the layout of the
development machines and CI). A test whose dataset is missing is skipped with a reason starting
:data:`MISSING_PREFIX` (the session summary counts those in one line), except under ``CI=true``, where a missing
dataset is a failure: CI must never look green because it tested nothing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
MISSING_PREFIX = "dataset missing:"
#: A file that shows each dataset is present under a root.
MARKERS = {
    "mnist": Path("MNIST/raw/train-images-idx3-ubyte"),
    "fashion_mnist": Path("FashionMNIST/raw/train-images-idx3-ubyte"),
    "cifar10": Path("cifar-10-batches-bin/test_batch.bin"),
}


def default_root() -> Path | None:
    """``$ZOO_DATA_ROOT``, else ``../shared/datasets`` if it exists, else ``None``."""
    env = os.environ.get("ZOO_DATA_ROOT", "").strip()
    if env:
        return Path(env)
    return SHARED if SHARED.is_dir() else None


def missing(what: str) -> NoReturn:
    """Skip (or, under ``CI=true``, fail) a test because ``what`` is not available."""
    message = f"{MISSING_PREFIX} {what}; set ZOO_DATA_ROOT to a torchvision-layout folder (CI: ../shared/datasets)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def root_with(*datasets: str) -> Path:
    """The data root, after checking it holds ``datasets`` (skip or fail otherwise, see :func:`missing`)."""
    root = default_root()
    if root is None:
        missing(f"no data root for {', '.join(datasets)}")
    for name in datasets:
        if not (root / MARKERS[name]).is_file():
            missing(f"{name} not found under {root}")
    return root
