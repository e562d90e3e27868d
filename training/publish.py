"""Publish a finished run folder into the weights manifest: its checkpoint goes to ``weights/``, its entry into
``weights_manifest.json``.

    python -m training.publish runs/bp_mlp.cifar10 [more run folders] [--manifest FILE]

A run folder is what ``python -m training.train ... --out DIR`` wrote: ``entry.json`` and the checkpoint it names.
Publishing checks the checkpoint against the entry's SHA-256 and size, and refuses a run that departed from its
recipe (``--limit``, ``--epochs``, ``--set`` ...) or was trained from uncommitted code (its recorded commit would
not reproduce it). The manifest is updated under a lock, atomically, keeping its file mode; the file of the entry it
replaces is deleted once nothing refers to it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from filelock import FileLock

from zoo.weights.integrity import sha256_file
from zoo.weights.manifest import Entry, Manifest, read_manifest, write_manifest
from zoo.weights.paths import manifest_path

ENTRY_JSON = "entry.json"


class PublishError(ValueError):
    """A run folder that may not be published, and why."""


def read_run_entry(run_dir: Path) -> tuple[Entry, Path]:
    """The validated entry of a finished run and the path of its checkpoint (checked against the entry)."""
    entry_file = Path(run_dir) / ENTRY_JSON
    if not entry_file.is_file():
        raise PublishError(f"{run_dir} holds no {ENTRY_JSON}: it is not a finished training run")
    entry = Entry.from_dict(json.loads(entry_file.read_text()))
    checkpoint = Path(run_dir) / entry.filename
    if not checkpoint.is_file():
        raise PublishError(f"{run_dir}: the checkpoint {entry.filename} named by {ENTRY_JSON} is missing")
    actual = sha256_file(checkpoint)
    if actual != entry.sha256 or checkpoint.stat().st_size != entry.size_bytes:
        raise PublishError(f"{checkpoint}: SHA-256 {actual} / {checkpoint.stat().st_size} bytes do not match "
                           f"{ENTRY_JSON} ({entry.sha256} / {entry.size_bytes} bytes)")
    return entry, checkpoint


def publish_run(run_dir: Path, manifest_file: Path) -> Entry:
    """Copy a finished run's checkpoint into ``weights/`` beside ``manifest_file`` and record its entry."""
    entry, checkpoint = read_run_entry(run_dir)
    departed = entry.recipe.get("departures")
    if departed:
        raise PublishError(f"{entry.id} from {run_dir} departs from its recipe ({', '.join(departed)}); only a run "
                           f"of the recipe as written is published")
    if "-dirty" in str(entry.recipe.get("git_commit", "")):
        raise PublishError(f"{entry.id} from {run_dir} was trained from uncommitted code "
                           f"({entry.recipe['git_commit']}); commit, retrain and publish that run")
    target = Path(manifest_file).parent / str(entry.file)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(checkpoint, tmp)
        if sha256_file(Path(tmp)) != entry.sha256:
            raise PublishError(f"copy of {checkpoint} to {target.parent} does not match its SHA-256")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    update_manifest(Path(manifest_file), entry)
    return entry


def update_manifest(manifest_file: Path, entry: Entry) -> None:
    """Add or replace ``entry`` (keeping the manifest's file mode); delete the file of the entry it replaces if no
    longer referenced."""
    with FileLock(str(manifest_file) + ".lock"):  # parallel training runs each add their entry
        exists = manifest_file.is_file()
        current = read_manifest(manifest_file) if exists else Manifest({})
        mode = stat.S_IMODE(manifest_file.stat().st_mode) if exists else 0o644
        old = current.entries.get(entry.id)
        write_manifest(current.with_entry(entry), manifest_file)
        os.chmod(manifest_file, mode)
    if old is not None and old.file and old.file != entry.file:
        (manifest_file.parent / old.file).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders (training.train --out DIR)")
    parser.add_argument("--manifest", type=Path, help="manifest to update (default: the checkout's)")
    args = parser.parse_args(argv)
    status = 0
    for run_dir in args.runs:
        try:
            entry = publish_run(run_dir, args.manifest or manifest_path())
        except (PublishError, ValueError, OSError) as exc:
            print(f"error: {run_dir}: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"published {entry.id}: top-1 {entry.metrics['top1']:.2f}% -> {entry.file}")
    return status


if __name__ == "__main__":
    sys.exit(main())
