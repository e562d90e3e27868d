"""The MNIST test split shipped inside the package (``zoo/data/bundled/``, about 1.6 MB).

``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` are the official uncompressed files
gzipped deterministically (compression level 9, header mtime 0, no file name), so the bytes depend
only on the content (and the zlib build). They were made, and can be remade, with::

    python -m zoo.data.bundle /path/to/MNIST/raw

They are verified against the official SHA-256 of the uncompressed content, like any other copy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from zoo.data.catalog import IDX_FILES, IDX_SHA256
from zoo.data.idx import gzip_bytes_deterministic
from zoo.weights.integrity import sha256_file

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_FILES: tuple[str, ...] = IDX_FILES["test"]  # MNIST test images, labels


def bundled_path(filename: str) -> Path:
    """Path of the bundled gzipped copy of the MNIST test file ``filename`` (e.g. ``t10k-images-idx3-ubyte``)."""
    if filename not in BUNDLED_FILES:
        raise ValueError(f"{filename!r} is not bundled; bundled: {', '.join(BUNDLED_FILES)}")
    return BUNDLED_DIR / f"{filename}.gz"


def make_bundled(source_raw_dir: Path | str, dest_dir: Path | str = BUNDLED_DIR) -> list[Path]:
    """Write the deterministic gzips of the MNIST test files found uncompressed in ``source_raw_dir``.

    Each source file must match its official SHA-256 (:class:`ValueError` otherwise).
    """
    source_raw_dir, dest_dir = Path(source_raw_dir), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in BUNDLED_FILES:
        src = source_raw_dir / name
        actual = sha256_file(src)
        if actual != IDX_SHA256["mnist"][name]:
            raise ValueError(f"{src}: not the official file (SHA-256 {actual})")
        dest = dest_dir / f"{name}.gz"
        dest.write_bytes(gzip_bytes_deterministic(src.read_bytes()))
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m zoo.data.bundle MNIST_RAW_DIR [--dest DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding the uncompressed official MNIST files")
    parser.add_argument("--dest", type=Path, default=BUNDLED_DIR)
    args = parser.parse_args(argv)
    for path in make_bundled(args.source, args.dest):
        print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
