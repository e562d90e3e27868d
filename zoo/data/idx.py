"""Reader of IDX files (the MNIST / Fashion-MNIST format), raw or gzipped.

An IDX file is a big-endian header -- magic ``0x0000TTNN`` (``TT`` the element type, ``0x08`` for
uint8; ``NN`` the number of dimensions), then one uint32 per dimension -- followed by the elements,
row-major. Images files have magic ``0x00000803`` (N, rows, cols), labels files ``0x00000801`` (N,).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from zoo.data import checksums
from zoo.errors import DataFormatError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_UINT8 = 0x08
_CHUNK = 1 << 20
_CONTENT_KIND = "sha256-content"  # memo kind: SHA-256 of the uncompressed bytes


def open_maybe_gzip(path: Path | str) -> BinaryIO:
    """Open ``path`` for binary reading, decompressing on the fly when its name ends in ``.gz``."""
    path = Path(path)
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


class _Reader:
    """Reads exact byte counts from a stream, optionally hashing everything read, counting bytes."""

    def __init__(self, f: BinaryIO, path: Path, hasher: "hashlib._Hash | None") -> None:
        self.f, self.path, self.hasher, self.total = f, path, hasher, 0

    def read_into(self, buf: bytearray) -> int:
        """Fill ``buf`` as far as the stream allows; return the number of bytes read."""
        view = memoryview(buf)
        got = 0
        while got < len(buf):
            n = self.f.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                break
            got += n
        if self.hasher is not None:
            self.hasher.update(view[:got])
        self.total += got
        return got

    def read_exact(self, n: int, what: str) -> bytearray:
        """Read exactly ``n`` bytes of ``what``; :class:`DataFormatError` ("truncated") if the stream ends first."""
        buf = bytearray(n)
        got = self.read_into(buf)
        if got != n:
            raise DataFormatError(
                f"{self.path}: truncated IDX file: expected {n} bytes of {what}, found {got}"
            )
        return buf

    def read_claimed(self, n: int, what: str) -> bytes:
        """Read ``n`` bytes that a header claims, in chunks, so memory follows what the file really holds (a
        header claiming gigabytes over a small file allocates nothing); :class:`DataFormatError` naming the claim
        and what was found if the stream ends first."""
        chunks: list[bytes] = []
        got = 0
        while got < n:
            chunk = self.f.read(min(_CHUNK, n - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
        if self.hasher is not None:
            self.hasher.update(data)
        self.total += got
        if got != n:
            raise DataFormatError(f"{self.path}: truncated IDX file: its header claims {n} bytes of {what}, "
                                  f"the file holds {got}")
        return data

    def drain(self) -> None:
        """Read (and hash) the rest of the stream."""
        buf = bytearray(_CHUNK)
        while self.read_into(buf) == len(buf):
            pass


def read_idx(
    path: Path | str,
    magic: int,
    *,
    sha256: str | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read the uint8 IDX file ``path`` (raw or ``.gz``) whose magic must be ``magic``.

    Returns ``(array, dims)``: ``array`` holds the first ``limit`` items (all when ``None``) with shape
    ``(n, *dims[1:])``, writable and contiguous; ``dims`` are the header's dimensions. With ``sha256``,
    the SHA-256 of the uncompressed content must equal it (:class:`zoo.errors.ChecksumError`
    otherwise); the result is memoised per file state, so a second read does not hash again.
    A malformed file raises :class:`zoo.errors.DataFormatError`.
    """
    path = Path(path)
    key = checksums.stat_key(path, _CONTENT_KIND)
    known = checksums.lookup(key) if sha256 is not None else None
    if known is not None:
        checksums.compare(path, "SHA-256", sha256, known)  # type: ignore[arg-type]
    hasher = hashlib.sha256() if sha256 is not None and known is None else None
    try:
        with open_maybe_gzip(path) as f:
            r = _Reader(f, path, hasher)
            arr, dims, expected_total = _parse(r, magic, limit)
            complete = arr.shape[0] == dims[0]
            if hasher is not None or complete:
                r.drain()
                if r.total != expected_total:
                    raise DataFormatError(
                        f"{path}: {r.total} bytes of content, its header ({dims[0]} items) "
                        f"declares {expected_total}"
                    )
            elif not path.name.endswith(".gz"):
                size = os.path.getsize(path)
                if size != expected_total:
                    raise DataFormatError(
                        f"{path}: file is {size} bytes, its header declares {expected_total}"
                    )
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise DataFormatError(f"{path}: not a valid gzip file ({e})") from e
    if hasher is not None:
        digest = hasher.hexdigest()
        checksums.remember(key, digest)
        checksums.compare(path, "SHA-256", sha256, digest)  # type: ignore[arg-type]
    return arr, dims


def _parse(r: _Reader, magic: int, limit: int | None) -> tuple[np.ndarray, tuple[int, ...], int]:
    head = r.read_exact(4, "header")
    (found,) = struct.unpack(">I", head)
    if found != magic:
        kinds = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
        kind = kinds.get(magic, "IDX")
        raise DataFormatError(
            f"{r.path}: not an IDX {kind} file: magic number 0x{found:08x}, expected 0x{magic:08x}"
        )
    if head[2] != _UINT8:  # unreachable while magic is checked exactly; kept for other magics
        raise DataFormatError(f"{r.path}: IDX element type 0x{head[2]:02x} is not uint8 (0x08)")
    ndim = head[3]
    dims = struct.unpack(f">{ndim}I", r.read_exact(4 * ndim, "header dimensions"))
    row = math.prod(dims[1:])
    expected_total = 4 + 4 * ndim + dims[0] * row
    if not r.path.name.endswith(".gz") and os.path.getsize(r.path) < expected_total:
        raise DataFormatError(f"{r.path}: its header claims {dims[0]} items of {row} bytes ({expected_total} bytes "
                              f"in all), but the file is {os.path.getsize(r.path)} bytes")
    n = dims[0] if limit is None else min(limit, dims[0])
    body = bytearray(r.read_claimed(n * row, f"data ({dims[0]} items of {row} bytes declared)"))
    arr = np.frombuffer(body, dtype=np.uint8).reshape((n, *dims[1:]))
    return arr, tuple(dims), expected_total


def gzip_bytes_deterministic(data: bytes, *, compresslevel: int = 9) -> bytes:
    """gzip ``data`` with a fixed header (mtime 0, no file name), so equal input gives equal bytes."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=compresslevel) as gz:
        gz.write(data)
    return out.getvalue()
