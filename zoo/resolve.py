"""Finding a checkpoint file: checkout, torch hub cache, URL download, Hugging Face Hub.

The SHA-256 recorded in the manifest is checked every time a file is used, wherever it came from.
"""
from __future__ import annotations

import os
from pathlib import Path

from zoo.download import download_file, is_offline
from zoo.errors import DownloadError, OfflineError, WeightsPendingError
from zoo.integrity import check_sha256
from zoo.manifest import Entry
from zoo.paths import manifest_path, weights_cache_dir

SOURCES = ("auto", "local", "cache", "url", "hf")


def weights_url(entry: Entry) -> str:
    """Download URL of a checkpoint; ``$ZOO_WEIGHTS_URL`` replaces the base of the manifest's URL."""
    base = os.environ.get("ZOO_WEIGHTS_URL")
    if base:
        return base.rstrip("/") + "/" + entry.filename
    assert entry.url is not None
    return entry.url


def checkout_file(entry: Entry) -> Path:
    """Where the checkpoint sits in a checkout (``file`` is relative to the manifest's folder)."""
    assert entry.file is not None
    return manifest_path().parent / entry.file


def cached_file(entry: Entry) -> Path:
    """Where a downloaded checkpoint sits in the torch hub cache."""
    return weights_cache_dir() / entry.filename


def resolve_file(entry: Entry, source: str = "auto") -> Path:
    """Path to a verified local copy of the entry's checkpoint, fetching it if ``source`` allows.

    ``auto`` tries, in order, the checkout, the torch hub cache, the URL and the Hugging Face Hub;
    the other sources try only themselves.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown weights source {source!r}; accepted: {', '.join(SOURCES)}")
    assert entry.sha256 is not None
    for where, path in (("local", checkout_file(entry)), ("cache", cached_file(entry))):
        if source in ("auto", where) and path.is_file():
            return check_sha256(path, entry.sha256)
    if source in ("local", "cache"):
        missing = checkout_file(entry) if source == "local" else cached_file(entry)
        raise FileNotFoundError(f"{entry.id}: no checkpoint at {missing}")
    if is_offline() and source == "auto":
        raise OfflineError(_offline_message(entry))
    errors: list[str] = []
    if source in ("auto", "url"):
        try:
            return download_file(weights_url(entry), cached_file(entry), sha256=entry.sha256)
        except DownloadError as exc:
            if source == "url":
                raise
            errors.append(str(exc))
    from zoo.hf_hub import hf_download

    try:
        return check_sha256(hf_download(entry.hf["repo_id"], entry.hf["filename"], entry.hf["revision"]),
                            entry.sha256)
    except (DownloadError, OfflineError) as exc:
        if source == "hf":
            raise
        errors.append(str(exc))
    raise DownloadError(f"could not get the checkpoint of {entry.id}:\n  " + "\n  ".join(errors)
                        + "\n" + _offline_message(entry))


def _offline_message(entry: Entry) -> str:
    return (f"{entry.id} is not available offline. Run `python -m zoo download {entry.id}` on a machine with "
            f"network access, or place {entry.filename} (from {weights_url(entry)} or the Hugging Face repo "
            f"{entry.hf['repo_id']}) at {cached_file(entry)}.")


def raise_if_pending(entry: Entry) -> None:
    """Loading a pending entry is an error that says why it is pending and how to produce it."""
    if not entry.published:
        raise WeightsPendingError(f"{entry.id} is not published yet: {entry.pending_reason} "
                                  f"To train it: {entry.recipe.get('command')}")

