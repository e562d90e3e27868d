"""Plain HTTP(S) downloads of single files: atomic, verified, safe under concurrency.

Only the standard library (:mod:`urllib`) talks to the network. A download streams into a
temporary file next to the destination, is checked against the announced ``Content-Length`` and
the expected hashes, and only then replaces the destination with :func:`os.replace`. Whatever
goes wrong, the temporary file is removed and an existing destination is left untouched.
"""
from __future__ import annotations

import glob
import hashlib
import http.client
import os
import secrets
import socket
import urllib.error
import urllib.request
from pathlib import Path

from filelock import FileLock
from tqdm.auto import tqdm

from zoo.errors import DownloadError, HashMismatchError, OfflineError
from zoo.weights.integrity import file_digest

__all__ = ["DownloadHashMismatchError", "copy_file", "download_file", "is_offline"]

_CHUNK = 1 << 16
_TRUE = {"1", "on", "yes", "true"}
_USER_AGENT = "bioplausible-zoo (urllib)"


class DownloadHashMismatchError(HashMismatchError):
    """A downloaded file's digest differs from the expected one; the file was discarded.

    Still a :class:`~zoo.errors.HashMismatchError` (``path``, ``expected``, ``actual``), with the
    ``url`` it came from and the hash ``algorithm`` (``"sha256"`` or ``"md5"``).
    """

    def __init__(self, url: str, path: Path | str, algorithm: str, expected: str, actual: str) -> None:
        super().__init__(path, expected, actual)
        self.url, self.algorithm = url, algorithm

    def __reduce__(self) -> tuple[type, tuple[str, Path, str, str, str]]:  # picklable across processes
        return (type(self), (self.url, self.path, self.algorithm, self.expected, self.actual))

    def __str__(self) -> str:
        name = {"sha256": "SHA-256", "md5": "MD5"}.get(self.algorithm, self.algorithm)
        return (
            f"{name} mismatch for {self.path} downloaded from {self.url}: expected {self.expected}, "
            f"got {self.actual}. The downloaded bytes were discarded"
            + ("; the existing file was left untouched." if self.path.exists() else ".")
        )


def is_offline() -> bool:
    """Whether ``ZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value (read at call time)."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"))


def _offline_var() -> str:
    for var in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    return ""


def _expected_hashes(sha256: str | None, md5: str | None) -> dict[str, str]:
    wanted: dict[str, str] = {}
    if sha256:
        wanted["sha256"] = sha256.strip().lower()
    if md5:
        wanted["md5"] = md5.strip().lower()
    return wanted


def _existing_file_verifies(dest: Path, wanted: dict[str, str]) -> bool:
    """True if ``dest`` is a file and every expected digest matches (False when nothing is expected)."""
    if not wanted or not dest.is_file():
        return False
    try:
        return all(file_digest(dest, algo) == digest for algo, digest in wanted.items())
    except OSError:
        return False


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically and return ``dest``.

    The body streams into ``<dest>.<pid>.<random>.part`` in ``dest``'s folder (with a tqdm bar
    whose total comes from ``Content-Length``; ``progress=False`` hides it), is fsynced, checked
    against ``Content-Length`` and the expected ``sha256`` / ``md5`` (hex, either or both), then
    moved onto ``dest`` with :func:`os.replace`.

    Concurrency: a :class:`filelock.FileLock` on ``<dest>.lock`` serialises downloads of the same
    destination across threads and processes. Once the lock is held, partial files left by killed
    downloads of ``dest`` are deleted, and an existing ``dest`` whose digests match is returned without
    any request (this needs ``sha256`` or ``md5``; without a hash the file is downloaded again and
    replaced atomically). The ``.lock`` files stay beside their downloads (an empty file each; deleting
    one while no download runs is harmless): removing a lock file that another process may be about to
    take is what makes lock clean-up unsafe, so the zoo never does it.

    Offline: with ``ZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` true (read at call time) no request is
    made; an existing ``dest`` that verifies against the given hash is returned, otherwise
    :class:`~zoo.errors.OfflineError` is raised.

    ``timeout`` bounds connecting and each read on the socket, in seconds.

    Raises:
        OfflineError: offline mode is on and ``dest`` is not already there and verified.
        DownloadError: HTTP error status, unreachable host, timeout, connection broken mid-body,
            or a body shorter/longer than its ``Content-Length``.
        DownloadHashMismatchError: (a :class:`~zoo.errors.HashMismatchError`) the bytes do not
            match ``sha256`` / ``md5``.

    On every failure the temporary file is deleted and a pre-existing ``dest`` is not modified.
    """
    dest = Path(dest)
    wanted = _expected_hashes(sha256, md5)

    if is_offline():
        if _existing_file_verifies(dest, wanted):
            return dest
        raise OfflineError(
            f"Cannot download {url} to {dest}: offline mode is on ({_offline_var()}). "
            f"Download that URL on a machine with network access and place the file at {dest}"
            + (f" (expected {', '.join(f'{a} {d}' for a, d in wanted.items())})" if wanted else "")
            + ", or unset ZOO_OFFLINE / HF_HUB_OFFLINE."
        )

    return _put_in_place(url, dest, wanted, progress=progress, timeout=timeout)


def copy_file(src: Path, dest: Path, *, sha256: str | None = None, md5: str | None = None) -> Path:
    """Copy the local file ``src`` to ``dest`` the way :func:`download_file` downloads (the same lock, temporary
    file, checks and :func:`os.replace`; an existing ``dest`` that verifies is kept) and return ``dest``. It reads
    no network, so it works offline too."""
    return _put_in_place(Path(src).resolve().as_uri(), Path(dest), _expected_hashes(sha256, md5), progress=False,
                         timeout=30.0)


def _put_in_place(url: str, dest: Path, wanted: dict[str, str], *, progress: bool, timeout: float) -> Path:
    """Under ``dest``'s lock: clear stale partial files, keep a ``dest`` that verifies, else fetch ``url``
    (``http(s)://`` or ``file://``) through a verified temporary file onto ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        remove_stale_partials(dest)
        if _existing_file_verifies(dest, wanted):
            return dest
        _download_locked(url, dest, wanted, progress=progress, timeout=timeout)
    return dest


def remove_stale_partials(dest: Path) -> list[Path]:
    """Delete the ``<dest>.<pid>.<random>.part`` files of earlier downloads of ``dest`` that were killed before
    they could clean up; return them. Call it with ``dest``'s lock held: no live download then owns one."""
    stale = sorted(dest.parent.glob(f"{glob.escape(dest.name)}.*.part"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _download_locked(url: str, dest: Path, wanted: dict[str, str], *, progress: bool, timeout: float) -> None:
    """Fetch ``url`` into a unique temporary file, verify it, and move it onto ``dest``."""
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        _fetch_to(url, tmp, dest, wanted, progress=progress, timeout=timeout)
        os.replace(tmp, dest)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def _open(url: str, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - URL comes from the manifest
    except urllib.error.HTTPError as e:
        e.close()
        raise DownloadError(f"HTTP {e.code} {e.reason} while downloading {url}") from e
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise DownloadError(f"Could not reach {url}: no answer within {timeout}s") from e
        raise DownloadError(f"Could not reach {url}: {reason}") from e
    except (TimeoutError, socket.timeout) as e:
        raise DownloadError(f"Could not reach {url}: no answer within {timeout}s") from e
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DownloadError(f"Could not reach {url}: {type(e).__name__}: {e}") from e


def _fetch_to(
    url: str, tmp: Path, dest: Path, wanted: dict[str, str], *, progress: bool, timeout: float
) -> None:
    hashers = {algo: hashlib.new(algo) for algo in wanted}
    with _open(url, timeout) as response:
        length_header = response.headers.get("Content-Length")
        try:
            expected_len: int | None = int(length_header) if length_header is not None else None
        except ValueError:
            expected_len = None
        received = 0
        of_expected = f" of {expected_len}" if expected_len is not None else ""
        with open(tmp, "wb") as f, tqdm(
            total=expected_len,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=dest.name,
            disable=not progress,
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except http.client.IncompleteRead as e:
                    received += len(e.partial)
                    raise DownloadError(
                        f"Truncated download from {url}: expected {expected_len} bytes, received {received}"
                    ) from e
                except (TimeoutError, socket.timeout) as e:
                    raise DownloadError(
                        f"Timed out after {timeout}s while downloading {url} "
                        f"({received}{of_expected} bytes received)"
                    ) from e
                except (OSError, http.client.HTTPException) as e:
                    raise DownloadError(
                        f"Connection broke while downloading {url} after {received}{of_expected} bytes: "
                        f"{type(e).__name__}: {e}"
                    ) from e
                if not chunk:
                    break
                f.write(chunk)  # local disk errors (e.g. ENOSPC) propagate as they are
                for h in hashers.values():
                    h.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())

    if expected_len is not None and received != expected_len:
        kind = "Truncated" if received < expected_len else "Oversized"
        raise DownloadError(f"{kind} download from {url}: expected {expected_len} bytes, received {received}")
    for algo, h in hashers.items():
        actual = h.hexdigest()
        if actual != wanted[algo]:
            raise DownloadHashMismatchError(url, dest, algo, wanted[algo], actual)
