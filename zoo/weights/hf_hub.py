"""Thin wrapper over the ``huggingface_hub`` client: download one file, push one folder.

``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and the cache locations into
module constants when it is first imported. The zoo re-reads them from :data:`os.environ` on
every call and passes them explicitly (``endpoint=``, ``local_files_only=``, ``cache_dir=``), so
that setting them after import (e.g. in tests, or in a notebook) takes effect. Errors of the
client are translated into :mod:`zoo.errors` exceptions whose messages name the repo, file,
revision and endpoint.
"""
from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from zoo.errors import DownloadError, OfflineError, PushError, ZooError
from zoo.weights.download import is_offline

__all__ = ["DEFAULT_ENDPOINT", "PushError", "hf_cache_dir", "hf_download", "hf_endpoint", "push_folder"]

DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT_ENV = "ZOO_HF_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT = 3.0
_SYNC_LOCK = threading.Lock()


def hf_endpoint() -> str:
    """The Hub endpoint: ``HF_ENDPOINT`` read now (trailing ``/`` stripped), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/") or DEFAULT_ENDPOINT


def hf_cache_dir() -> Path:
    """The Hub cache folder as ``huggingface_hub`` would compute it from the environment *now*.

    ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, where ``HF_HOME``
    defaults to ``$XDG_CACHE_HOME/huggingface`` (``~/.cache/huggingface``).
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def _sync_offline_constant(offline: bool) -> None:
    """Make ``huggingface_hub``'s import-time offline flag agree with the environment now.

    The client refuses every request while ``constants.HF_HUB_OFFLINE`` is true, and that value
    was frozen when the package was imported; the zoo's rule is that the variable is read at
    call time, so the constant is updated to match.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE != offline:
        with _SYNC_LOCK:
            constants.HF_HUB_OFFLINE = offline


def connect_timeout() -> float:
    """Seconds the zoo waits to connect to the Hub before giving up (``$ZOO_HF_CONNECT_TIMEOUT``, default 3)."""
    value = os.environ.get(CONNECT_TIMEOUT_ENV, "")
    try:
        return float(value) if value.strip() else DEFAULT_CONNECT_TIMEOUT
    except ValueError:
        raise ValueError(f"{CONNECT_TIMEOUT_ENV} must be a number of seconds, got {value!r}") from None


def _unreachable(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be connected to within :func:`connect_timeout` (``None`` if it can).

    huggingface_hub retries an unreachable endpoint with back-off for ~25 s; one short TCP connect first lets the
    zoo fall back to the cache (or fail) in seconds.
    """
    parts = urllib.parse.urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = connect_timeout()
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        return f"the endpoint {endpoint} cannot be reached ({type(exc).__name__}: {exc}; connect timeout {timeout} s)"
    return None


def _where(repo_id: str, filename: str, revision: str, endpoint: str) -> str:
    return f"{filename!r} from repo {repo_id!r} at revision {revision!r} (endpoint {endpoint})"


def hf_download(
    repo_id: str,
    filename: str,
    revision: str | None = None,
    *,
    cache_dir: Path | None = None,
    token: str | bool | None = None,
) -> Path:
    """Fetch ``filename`` of model repo ``repo_id`` into the Hugging Face cache; return its path.

    Wraps :func:`huggingface_hub.hf_hub_download`. ``revision`` is a branch, tag or commit sha
    (default ``"main"``). ``cache_dir`` defaults to :func:`hf_cache_dir`. ``token`` is passed
    through (``None``: the locally saved token, if any).

    ``HF_ENDPOINT`` and the offline switches ``HF_HUB_OFFLINE`` / ``ZOO_OFFLINE`` are read at call
    time. Offline, a file already in the cache for that revision is returned without any request.

    Raises:
        OfflineError: offline mode is on and the file is not in the cache.
        DownloadError: the repo, revision or file does not exist (or is private/gated without a
            valid token), the endpoint cannot be reached and the file is not cached, or the
            transfer failed.
    """
    import httpx2
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    endpoint = hf_endpoint()
    offline = is_offline()
    cache = Path(cache_dir) if cache_dir is not None else hf_cache_dir()
    where = _where(repo_id, filename, rev, endpoint)
    _sync_offline_constant(offline)
    unreachable = None if offline else _unreachable(endpoint)
    try:
        path = hf_hub_download(
            repo_id=repo_id,
            filename=filename,
            revision=rev,
            cache_dir=cache,
            endpoint=endpoint,
            local_files_only=offline or unreachable is not None,
            token=token,
        )
    except GatedRepoError as e:
        raise DownloadError(
            f"Cannot download {where}: the repo is gated; accept its terms on the Hub and pass a token. ({e})"
        ) from e
    except RepositoryNotFoundError as e:
        raise DownloadError(
            f"Cannot download {where}: repository {repo_id!r} was not found on {endpoint} "
            "(check the repo id, or pass a token if it is private)."
        ) from e
    except RevisionNotFoundError as e:
        raise DownloadError(
            f"Cannot download {where}: revision {rev!r} does not exist in repository {repo_id!r}."
        ) from e
    except RemoteEntryNotFoundError as e:
        raise DownloadError(
            f"Cannot download {where}: file {filename!r} does not exist in repository {repo_id!r} "
            f"at revision {rev!r}."
        ) from e
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        if unreachable is not None:
            raise DownloadError(f"Cannot download {where}: {unreachable}, and the file is not in the Hugging Face "
                                f"cache {cache}. ({CONNECT_TIMEOUT_ENV} sets the connect timeout.)") from None
        if offline:
            raise OfflineError(
                f"Cannot load {where}: offline mode is on (HF_HUB_OFFLINE / ZOO_OFFLINE) and the file is not "
                f"in the Hugging Face cache {cache}. Download it first with network access, e.g. "
                f"`hf download {repo_id} {filename} --revision {rev} --cache-dir {cache}`, "
                "or unset HF_HUB_OFFLINE / ZOO_OFFLINE."
            ) from e
        cause = e.__cause__ or e
        raise DownloadError(
            f"Cannot download {where}: the endpoint could not be reached or did not answer like a Hugging Face "
            f"Hub, and the file is not in the cache {cache}. Cause: {type(cause).__name__}: {cause}"
        ) from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise DownloadError(f"Cannot download {where}: HTTP {status} from the Hub: {e}") from e
    except (httpx2.HTTPError, FileMetadataError, OSError) as e:
        if isinstance(e, ZooError):
            raise
        raise DownloadError(f"Cannot download {where}: {type(e).__name__}: {e}") from e
    return Path(path)


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    token: str | None = None,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> str:
    """Upload every file under ``folder`` to model repo ``repo_id``; return the commit URL.

    Creates the repo if needed (``HfApi.create_repo(exist_ok=True)``; ``private`` only applies
    when it is created) and, when ``revision`` names a branch other than ``main``, that branch
    (from ``main``), then commits the folder with ``HfApi.upload_folder``. ``HF_ENDPOINT`` is read
    at call time. ``token=None`` uses the locally saved token.

    Raises:
        OfflineError: ``HF_HUB_OFFLINE`` / ``ZOO_OFFLINE`` is on.
        PushError: the repo could not be created, or the upload/commit failed.
        ValueError: ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"push_folder: {folder} is not a directory")
    endpoint = hf_endpoint()
    branch = revision or "main"
    if is_offline():
        raise OfflineError(
            f"Cannot push {folder} to {repo_id!r} (revision {branch!r}, endpoint {endpoint}): offline mode is on "
            "(HF_HUB_OFFLINE / ZOO_OFFLINE). Unset it to upload."
        )
    _sync_offline_constant(False)

    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint, token=token)
    step = "create repository"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if branch != "main":
            step = f"create branch {branch!r}"
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        step = "upload folder"
        info: Any = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=branch,
            commit_message=commit_message or f"Upload {folder.name} with bioplausible-zoo",
        )
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as e:
        if isinstance(e, ZooError):
            raise
        status = ""
        response = getattr(e, "response", None)
        if response is not None:
            status = f"HTTP {response.status_code}: "
        raise PushError(
            f"Cannot push {folder} to {repo_id!r} (revision {branch!r}, endpoint {endpoint}): "
            f"{step} failed: {status}{type(e).__name__}: {e}"
        ) from e
    return str(info.commit_url)
