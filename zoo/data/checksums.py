"""Checksums of dataset files, memoised so that repeated loads in one process do not re-hash them.

The memo is keyed by ``(real path, device, inode, size, mtime_ns, kind)``: replacing or touching a file
changes the key, so a modified file is hashed again.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from zoo.errors import ChecksumError

_Key = tuple[str, int, int, int, int, str]

_lock = threading.Lock()
_memo: dict[_Key, str] = {}
_stats: dict[str, int] = {"hits": 0, "misses": 0}


def stat_key(path: Path | str, kind: str) -> _Key:
    """Memo key of ``path`` as it is on disk now; ``kind`` names what was hashed (e.g. ``"sha256-content"``)."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, kind)


def lookup(key: _Key) -> str | None:
    """The digest remembered under ``key``, or ``None`` (counted as a cache hit or miss)."""
    with _lock:
        digest = _memo.get(key)
        _stats["hits" if digest is not None else "misses"] += 1
        return digest


def remember(key: _Key, digest: str) -> None:
    """Remember ``digest`` for the file state ``key``."""
    with _lock:
        _memo[key] = digest


def cache_info() -> dict[str, int]:
    """Counters of the verification memo: ``hits``, ``misses`` and ``size`` (files remembered)."""
    with _lock:
        return {**_stats, "size": len(_memo)}


def compare(path: Path | str, algorithm: str, expected: str, actual: str, *, what: str = "content") -> None:
    """Raise :class:`ChecksumError` naming the file and both digests unless ``actual == expected``."""
    if actual.lower() == expected.lower():
        return
    raise ChecksumError(
        f"{path}: {what} differs from the official release "
        f"({algorithm} expected {expected.lower()}, got {actual.lower()}). "
        "Delete the file and fetch it again (download=True; command line: --download), or pass verify=False to "
        "load it anyway "
        "(meant for generated test files)."
    )
