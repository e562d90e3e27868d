"""A training run's folder as a model: its ``entry.json`` (the entry the run would add to the manifest) and its
checkpoint, named by that entry. Wherever the zoo takes a manifest id it also takes such a folder, so a model of
one's own (a plugin rule's, a recipe of one's own) stands beside the published checkpoints."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from zoo.errors import ManifestError, RunFolderError
from zoo.files import atomic_write_text
from zoo.weights.integrity import sha256_file
from zoo.weights.manifest import Entry

ENTRY_JSON = "entry.json"


def is_run_folder(ref: str | Path) -> bool:
    """Whether ``ref`` names a folder holding an ``entry.json``."""
    return Path(ref).is_dir() and (Path(ref) / ENTRY_JSON).is_file()


def read_run_folder(folder: str | Path) -> Entry:
    """The validated entry of the finished run in ``folder``, with :attr:`Entry.location` set to its checkpoint,
    whose SHA-256 and size are checked against the entry."""
    folder = Path(folder)
    entry_file = folder / ENTRY_JSON
    if not entry_file.is_file():
        raise RunFolderError(f"{folder} holds no {ENTRY_JSON}: it is not a finished training run")
    try:
        entry = Entry.from_dict(json.loads(entry_file.read_text()))
    except (json.JSONDecodeError, ManifestError) as exc:
        raise RunFolderError(f"{entry_file} is not a run's entry: {exc}") from None
    if not entry.published:
        raise RunFolderError(f"{entry_file} describes a {entry.status} entry, not a trained checkpoint")
    checkpoint = folder / entry.filename
    if not checkpoint.is_file():
        raise RunFolderError(f"{folder}: the checkpoint {entry.filename} named by {ENTRY_JSON} is missing")
    actual = sha256_file(checkpoint)
    if actual != entry.sha256 or checkpoint.stat().st_size != entry.size_bytes:
        raise RunFolderError(f"{checkpoint}: SHA-256 {actual} / {checkpoint.stat().st_size} bytes do not match "
                             f"{ENTRY_JSON} ({entry.sha256} / {entry.size_bytes} bytes)")
    return dataclasses.replace(entry, location=checkpoint.resolve())


def write_run_entry(folder: str | Path, entry: Entry) -> Path:
    """Write ``entry`` as ``folder``'s ``entry.json``, atomically (a temporary name, then a rename)."""
    path = Path(folder) / ENTRY_JSON
    atomic_write_text(path, json.dumps(entry.to_dict(), indent=2) + "\n")
    return path
