"""Fetching missing dataset files from the official mirrors (``download=True``), and safe extraction.

Downloads go through :func:`zoo.weights.download.download_file` (atomic, progress bar). The mirror list can be
replaced by one base URL with ``$ZOO_DATA_MIRROR``: files are then fetched from
``$ZOO_DATA_MIRROR/<dataset>/<file>``, e.g. ``$ZOO_DATA_MIRROR/mnist/t10k-images-idx3-ubyte.gz`` or
``$ZOO_DATA_MIRROR/cifar10/cifar-10-python.tar.gz``.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from zoo.data import checksums
from zoo.data.catalog import (
    CIFAR_MIRRORS,
    CIFAR_PY_FOLDER,
    CIFAR_PY_TARBALL,
    CIFAR_PY_TARBALL_MD5,
    IDX_MIRRORS,
    IDX_SHA256,
    MIRROR_ENV,
)
from zoo.errors import (
    ChecksumError,
    DataFormatError,
    DownloadError,
    HashMismatchError,
    OfflineError,
    UnsafeArchiveError,
)

_CHUNK = 1 << 20
_FILTER_ERRORS: tuple[type[BaseException], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
)


def mirror_bases(dataset: str) -> tuple[str, ...]:
    """Base URLs to try, in order, for ``dataset``: ``$ZOO_DATA_MIRROR/<dataset>/`` alone when set, else the official
    ones."""
    override = os.environ.get(MIRROR_ENV, "").strip()
    if override:
        return (f"{override.rstrip('/')}/{dataset}/",)
    if dataset == "cifar10":
        return CIFAR_MIRRORS
    return IDX_MIRRORS[dataset]


def official_urls(dataset: str, filename: str) -> list[str]:
    """Every URL ``filename`` of ``dataset`` may be fetched from, in the order they are tried."""
    return [base + filename for base in mirror_bases(dataset)]


def _download(url: str, dest: Path, *, md5: str | None = None) -> Path:
    from zoo.weights.download import download_file  # lazy: only needed when downloading

    return download_file(url, dest, md5=md5)


def download_idx(dataset: str, filename: str, raw_dir: Path, *, verify: bool = True) -> Path:
    """Fetch ``<filename>.gz`` of an IDX dataset into ``raw_dir`` and decompress it next to it.

    Both the ``.gz`` (as torchvision keeps it) and the uncompressed file end up in ``raw_dir``; with
    ``verify`` the uncompressed content must have the official SHA-256, else the files are removed
    and the next mirror is tried. Returns the uncompressed file's path.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    gz_name = f"{filename}.gz"
    gz_path, raw_path = raw_dir / gz_name, raw_dir / filename
    expected = IDX_SHA256[dataset][filename] if verify else None
    failures: list[str] = []
    last_checksum: ChecksumError | None = None
    for url in official_urls(dataset, gz_name):
        try:
            _download(url, gz_path)
        except OfflineError:
            raise
        except (DownloadError, OSError) as e:
            failures.append(f"{url}: {e}")
            continue
        try:
            gunzip_verified(gz_path, raw_path, sha256=expected)
        except (ChecksumError, DataFormatError) as e:
            gz_path.unlink(missing_ok=True)
            failures.append(f"{url}: {e}")
            if isinstance(e, ChecksumError):
                last_checksum = e
            continue
        return raw_path
    summary = f"could not fetch {gz_name} for {dataset}; tried:\n  " + "\n  ".join(failures)
    if last_checksum is not None:
        raise ChecksumError(summary) from last_checksum
    raise DownloadError(summary)


def gunzip_verified(gz_path: Path, dest: Path, *, sha256: str | None = None) -> Path:
    """Decompress ``gz_path`` to ``dest`` atomically; with ``sha256``, the content must match it.

    The verified digest is remembered for both files (see :mod:`zoo.data.checksums`).
    """
    hasher = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(gz_path, "rb") as src:
            while chunk := src.read(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
        digest = hasher.hexdigest()
        if sha256 is not None:
            checksums.compare(gz_path, "SHA-256", sha256, digest)
        os.replace(tmp, dest)
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        tmp.unlink(missing_ok=True)
        raise DataFormatError(f"{gz_path}: not a valid gzip file ({e})") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    checksums.remember(checksums.stat_key(dest, "sha256-content"), digest)
    checksums.remember(checksums.stat_key(gz_path, "sha256-content"), digest)
    return dest


def download_cifar10(root: Path, *, verify: bool = True) -> Path:
    """Make ``root/cifar-10-batches-py`` from the official python tarball; return that folder.

    The tarball is kept at ``root/cifar-10-python.tar.gz`` (torchvision's place) and reused when
    present. With ``verify`` its MD5 must be the official one (:class:`ChecksumError` otherwise).
    """
    root.mkdir(parents=True, exist_ok=True)
    tarball = root / CIFAR_PY_TARBALL
    md5 = CIFAR_PY_TARBALL_MD5 if verify else None
    if not tarball.exists():
        failures: list[str] = []
        for url in official_urls("cifar10", CIFAR_PY_TARBALL):
            try:
                _download(url, tarball, md5=md5)
                break
            except HashMismatchError as e:
                raise ChecksumError(
                    f"{url}: the downloaded {CIFAR_PY_TARBALL} differs from the official release "
                    f"(MD5 expected {md5}, got {e.actual})"
                ) from e
            except OfflineError:
                raise
            except (DownloadError, OSError) as e:
                failures.append(f"{url}: {e}")
        else:
            raise DownloadError(
                f"could not fetch {CIFAR_PY_TARBALL}; tried:\n  " + "\n  ".join(failures)
            )
    elif md5 is not None:
        verify_file_digest(tarball, "md5", md5)
    safe_extract(tarball, root, only=CIFAR_PY_FOLDER)
    return root / CIFAR_PY_FOLDER


def verify_file_digest(path: Path, algorithm: str, expected: str) -> None:
    """Check the ``algorithm`` digest of ``path``'s bytes against ``expected`` (memoised)."""
    key = checksums.stat_key(path, f"{algorithm}-file")
    digest = checksums.lookup(key)
    if digest is None:
        h = hashlib.new(algorithm)
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        checksums.remember(key, digest)
    checksums.compare(path, algorithm.upper().replace("SHA", "SHA-"), expected, digest)


def _check_member(tar_path: Path, member: tarfile.TarInfo, only: str | None) -> None:
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise UnsafeArchiveError(f"{tar_path}: refusing member {name!r}: it points outside the target folder")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"{tar_path}: refusing member {name!r}: only plain files and folders are extracted"
        )
    if only is not None and parts and parts[0] != only:
        raise UnsafeArchiveError(f"{tar_path}: unexpected member {name!r} (everything should be under {only}/)")


def safe_extract(tar_path: Path, dest: Path, *, only: str | None = None) -> list[Path]:
    """Extract ``tar_path`` into ``dest`` refusing absolute paths, ``..``, links and devices.

    Every member must be a plain file or folder (under the top-level folder ``only`` when given),
    else :class:`UnsafeArchiveError` is raised before anything is written. Members are extracted into
    a temporary folder inside ``dest`` (with tarfile's ``filter="data"`` as well) and then moved into
    place file by file. Returns the extracted files' final paths.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(tar_path, m, only)
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
            try:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(staging, members=members, filter="data")
                else:  # Python < 3.11.4: the member checks above are the safeguard
                    tf.extractall(staging, members=members)
                placed = []
                for m in members:
                    if not m.isfile():
                        continue
                    final = dest.joinpath(*PurePosixPath(m.name).parts)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging.joinpath(*PurePosixPath(m.name).parts), final)
                    placed.append(final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except _FILTER_ERRORS as e:
        raise UnsafeArchiveError(f"{tar_path}: refused by tarfile's data filter: {e}") from e
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataFormatError(f"{tar_path}: not a readable tar archive ({e})") from e
    return placed
