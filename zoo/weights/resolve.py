"""Finding a checkpoint file: checkout, torch hub cache, URL download, Hugging Face Hub.

Every source ends in one check: the file's SHA-256 against the manifest (a settled local or cached file verified
before and unchanged since, by size, modification time and inode, is not hashed again: :mod:`zoo.weights.verified`).
With ``source="auto"`` the sources are tried in that order; a copy that fails its check (corrupted, truncated,
replaced) is skipped with a warning naming it, a bad cache file is replaced by a verified download, a cache folder
that cannot be written is reported in one line, and when every source fails the error lists what each one gave. The
model is always built from the manifest entry; a Hugging Face repository's ``config.json`` is a copy that must agree
with it (:func:`check_hub_config`)."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

from zoo.errors import DownloadError, HashMismatchError, OfflineError, WeightsPendingError, ZooError
from zoo.weights.download import copy_file, download_file, is_offline
from zoo.weights.integrity import check_sha256
from zoo.weights.manifest import Entry
from zoo.weights.paths import manifest_path, weights_cache_dir
from zoo.weights.verified import check_verified

SOURCES = ("auto", "local", "cache", "url", "hf")
HUB_CONFIG = "config.json"
#: Fields of a Hub ``config.json`` that must equal the manifest entry's.
HUB_CONFIG_FIELDS = ("zoo_id", "entrypoint", "dataset", "learning_rule", "arch", "input", "sha256")


class SourceUnavailable(ZooError, OSError):
    """One source could not provide the file (missing, unwritable, unreachable); the next one may."""


def weights_url(entry: Entry) -> str:
    """Download URL of a checkpoint; ``$ZOO_WEIGHTS_URL`` replaces the base of the manifest's URL."""
    base = os.environ.get("ZOO_WEIGHTS_URL")
    if base:
        return base.rstrip("/") + "/" + entry.filename
    if entry.url is None:
        raise SourceUnavailable(f"{entry.id} has no download URL in the manifest")
    return entry.url


def checkout_file(entry: Entry) -> Path:
    """Where the checkpoint sits in a checkout (``file`` is relative to the manifest's folder)."""
    return manifest_path().parent / str(entry.file)


def cached_file(entry: Entry) -> Path:
    """Where a downloaded checkpoint sits in the torch hub cache."""
    return weights_cache_dir() / entry.filename


def hub_config_values(entry: Entry) -> dict[str, Any]:
    """The values a Hub ``config.json`` of ``entry`` holds for :data:`HUB_CONFIG_FIELDS`."""
    return {"zoo_id": entry.id, "entrypoint": entry.entrypoint, "dataset": entry.dataset,
            "learning_rule": entry.learning_rule, "arch": entry.arch, "input": entry.input, "sha256": entry.sha256}


def check_hub_config(entry: Entry, config: Any, where: str) -> None:
    """Raise :class:`ZooError` naming the first field where a Hub ``config.json`` disagrees with the manifest."""
    if not isinstance(config, dict):
        raise ZooError(f"{where} is not a JSON object: not a bioplausible-zoo repository")
    for name, expected in hub_config_values(entry).items():
        if config.get(name) != expected:
            raise ZooError(f"{where} disagrees with the manifest entry of {entry.id} in field {name!r}: "
                           f"config has {config.get(name)!r}, manifest has {expected!r}; the model is built from "
                           "the manifest only, so this repository cannot be used for it")


def _local(entry: Entry) -> Path:
    path = checkout_file(entry)
    if not path.is_file():
        raise SourceUnavailable(f"no checkpoint at {path}")
    return check_verified(path, str(entry.sha256))


def _cache(entry: Entry) -> Path:
    path = cached_file(entry)
    if not path.is_file():
        raise SourceUnavailable(f"no checkpoint at {path}")
    return check_verified(path, str(entry.sha256))


def _url(entry: Entry) -> Path:
    dest = cached_file(entry)
    return _into_cache(dest, lambda: download_file(weights_url(entry), dest, sha256=entry.sha256))


def _into_cache(dest: Path, write: Callable[[], Path]) -> Path:
    """``write()`` (which puts ``dest`` into the cache); a cache folder that cannot be written is reported in one
    line saying how to choose another."""
    try:
        return write()
    except PermissionError as exc:
        raise SourceUnavailable(f"cannot write the cache folder {dest.parent} ({exc.strerror}); set TORCH_HOME to "
                                "a writable folder") from None
    except OSError as exc:
        if isinstance(exc, ZooError):
            raise
        raise SourceUnavailable(f"cannot write the cache folder {dest.parent} ({exc.strerror or exc}); set "
                                "TORCH_HOME to a writable folder") from None


def _hf(entry: Entry) -> Path:
    from zoo.weights.hf_hub import hf_download

    repo, revision = entry.hf["repo_id"], entry.hf["revision"]
    config_path = hf_download(repo, HUB_CONFIG, revision)
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"{repo}/{HUB_CONFIG} is not valid JSON ({exc})") from None
    check_hub_config(entry, config, f"{repo}/{HUB_CONFIG}")
    return check_sha256(hf_download(repo, entry.hf["filename"], revision), str(entry.sha256))


_FETCHERS: dict[str, Callable[[Entry], Path]] = {"local": _local, "cache": _cache, "url": _url, "hf": _hf}


def resolve_file(entry: Entry, source: str = "auto") -> Path:
    """Path to a verified local copy of the entry's checkpoint, fetching it if ``source`` allows.

    ``auto`` tries, in order, the checkout, the torch hub cache, the URL and the Hugging Face Hub (the last two not
    in offline mode); the other sources try only themselves and raise their own error.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown weights source {source!r}; accepted: {', '.join(SOURCES)}")
    raise_if_pending(entry)
    if entry.location is not None:  # a training run's folder, checked when its entry was read
        return entry.location
    if source != "auto":
        return _FETCHERS[source](entry)
    attempts: list[str] = []
    for name, fetch in _FETCHERS.items():
        if name in ("url", "hf") and is_offline():
            raise OfflineError(_offline_message(entry, attempts))
        try:
            return fetch(entry)
        except HashMismatchError as exc:
            warnings.warn(f"{entry.id}: skipping the corrupted {name} copy {exc.path} (SHA-256 {exc.actual}, expected "
                          f"{exc.expected}); trying the next source", stacklevel=2)
            attempts.append(f"{name}: {exc}")
        except (ZooError, OSError) as exc:
            attempts.append(f"{name}: {exc}")
    raise DownloadError(f"could not get the checkpoint of {entry.id}; each source gave:\n  " + "\n  ".join(attempts)
                        + "\n" + _offline_message(entry, []))


def _offline_message(entry: Entry, attempts: list[str]) -> str:
    tried = "".join(f"\n  {a}" for a in attempts)
    return (f"{entry.id} is not available offline.{tried}\nRun `python -m zoo download {entry.id}` on a machine "
            f"with network access, or place {entry.filename} (from {weights_url(entry)} or the Hugging Face repo "
            f"{entry.hf['repo_id']}) at {cached_file(entry)}.")


def download_to_cache(entry: Entry, source: str = "auto") -> Path:
    """The entry's verified checkpoint in the torch hub cache (:func:`cached_file`), what ``python -m zoo download``
    prints: found or fetched as :func:`resolve_file` does, and, when found elsewhere (the checkout, the Hugging Face
    cache), copied into the torch hub cache through the same locked, verified, atomic rename as a download."""
    found = resolve_file(entry, source)
    dest = cached_file(entry)
    if found == dest:
        return dest
    return _into_cache(dest, lambda: copy_file(found, dest, sha256=entry.sha256))


def raise_if_pending(entry: Entry) -> None:
    """Loading a pending entry is an error that says why it is pending and how to produce it."""
    if not entry.published:
        raise WeightsPendingError(f"{entry.id} is not published yet: {entry.pending_reason} "
                                  f"To train it: {entry.recipe.get('command')}")
