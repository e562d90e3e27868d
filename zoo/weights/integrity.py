"""Content hashes of files."""
from __future__ import annotations

import hashlib
from pathlib import Path

from zoo.errors import HashMismatchError

_CHUNK = 1 << 20


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes."""
    return file_digest(path, "sha256")


def check_sha256(path: Path | str, expected: str) -> Path:
    """Return ``path`` if its SHA-256 equals ``expected``; raise :class:`HashMismatchError` otherwise."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise HashMismatchError(path, expected, actual)
    return Path(path)
