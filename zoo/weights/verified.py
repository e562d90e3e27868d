"""Remembering which checkpoint files were verified, so an unchanged file is not hashed again on every load.

After a file's SHA-256 matches, its size, modification time (ns), inode and device are recorded beside the hash in
the zoo's own cache, ``~/.cache/bioplausible-zoo/verified.json`` (and in memory), not among torch hub's shared
checkpoints. A later check of the same path with the same
expected hash and the same four values skips the hash; any change of them (a rewrite, a replacement, a copy) means
hashing again, and a mismatch still raises. Files modified within the last :data:`SETTLE_S` seconds are not
recorded: file-system timestamps are coarse (milliseconds), so a file rewritten at once with the same size could
keep its modification time, and only settled files are trusted by their metadata.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from zoo.files import atomic_write_text
from zoo.weights.integrity import check_sha256
from zoo.weights.paths import zoo_cache_home

RECORD_NAME = "verified.json"
SETTLE_S = 2.0
_MEMORY: dict[str, dict[str, object]] = {}


def _fingerprint(path: Path, sha256: str) -> dict[str, object]:
    st = os.stat(path)
    return {"sha256": sha256.lower(), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino,
            "dev": st.st_dev}


def _record_file() -> Path:
    return zoo_cache_home() / RECORD_NAME


def _read_records() -> dict[str, dict[str, object]]:
    try:
        records = json.loads(_record_file().read_text())
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _remember(key: str, fingerprint: dict[str, object]) -> None:
    _MEMORY[key] = fingerprint
    try:
        folder = _record_file().parent
        folder.mkdir(parents=True, exist_ok=True)
        records = {**_read_records(), key: fingerprint}
        atomic_write_text(_record_file(), json.dumps(records))
    except OSError:
        pass  # a read-only cache only costs a hash next time


def check_verified(path: Path | str, expected: str) -> Path:
    """``path`` if its SHA-256 is ``expected`` (:class:`~zoo.errors.HashMismatchError` otherwise), hashing it only
    when it is not a settled file already verified unchanged."""
    path = Path(path)
    key = str(path.resolve())
    now = _fingerprint(path, expected)
    if _MEMORY.get(key) == now or _read_records().get(key) == now:
        return path
    check_sha256(path, expected)
    if time.time() - os.stat(path).st_mtime >= SETTLE_S:
        _remember(key, now)
    return path
