"""Publish a finished run folder into the weights manifest: its checkpoint goes to ``weights/``, its entry into
``weights_manifest.json``.

    python -m training.publish runs/bp_mlp.cifar10 [more run folders] [--manifest FILE]

A run folder is what ``python -m training.train ... --out DIR`` wrote: ``entry.json`` and the checkpoint it names.
``entry.json`` is a plain file anyone can edit, so publishing trusts none of it that it can recompute: it checks the
checkpoint against the entry's SHA-256 and size, derives the departures from the recipe again from the recorded
command (``--limit``, ``--epochs``, ``--set`` ...) and checks the recorded configuration is that command's, rebuilds
the model from the checkpoint and measures its test top-1 on the full official test split again; it refuses any
disagreement, a run that departed from its recipe and one trained from uncommitted code (its recorded commit would
not reproduce it). The manifest is updated under a lock, atomically, keeping its file mode; the file of the entry it
replaces is deleted once nothing refers to it and the manifest at git ``HEAD`` does not name it.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from filelock import FileLock

from training.command import UsageError, departures, parse_args, resolved_config
from zoo.errors import RunFolderError
from zoo.files import atomic_write
from zoo.weights.integrity import sha256_file
from zoo.weights.manifest import Entry, Manifest, read_manifest, write_manifest
from zoo.weights.paths import manifest_path
from zoo.weights.run_folder import read_run_folder


class PublishError(ValueError):
    """A run folder that may not be published, and why."""


def read_run_entry(run_dir: Path) -> tuple[Entry, Path]:
    """The validated entry of a finished run and the path of its checkpoint (checked against the entry)."""
    try:
        entry = read_run_folder(run_dir)
    except RunFolderError as exc:
        raise PublishError(str(exc)) from None
    assert entry.location is not None
    return dataclasses.replace(entry, location=None), entry.location


def check_run(run_dir: Path, entry: Entry, checkpoint: Path, data_root: Path | None = None) -> None:
    """Refuse a run whose entry is not what its recorded command and its checkpoint give (see the module doc)."""
    command = shlex.split(str(entry.recipe.get("command", "")))
    if command[:3] != ["python", "-m", "training.train"]:
        raise PublishError(f"{entry.id} from {run_dir}: the recorded command {entry.recipe.get('command')!r} is not "
                           "a `python -m training.train` command line")
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = parse_args(command[3:])
        departed, config = departures(args), resolved_config(args)
    except (SystemExit, UsageError, ValueError) as exc:
        raise PublishError(f"{entry.id} from {run_dir}: the recorded command does not parse ({exc})") from None
    if departed:
        raise PublishError(f"{entry.id} from {run_dir} departs from its recipe ({', '.join(departed)}); only a run "
                           f"of the recipe as written is published")
    if (args.entrypoint, args.dataset) != (entry.entrypoint, entry.dataset) or entry.recipe.get("config") != config:
        raise PublishError(f"{entry.id} from {run_dir}: the recorded configuration is not the one its command "
                           f"{entry.recipe['command']!r} gives (entry.json was edited?)")
    if "-dirty" in str(entry.recipe.get("git_commit", "")):
        raise PublishError(f"{entry.id} from {run_dir} was trained from uncommitted code "
                           f"({entry.recipe['git_commit']}); commit, retrain and publish that run")
    measured_metrics_agree(run_dir, entry, checkpoint, data_root)


def measured_metrics_agree(run_dir: Path, entry: Entry, checkpoint: Path, data_root: Path | None) -> None:
    """Rebuild the model from ``checkpoint`` and refuse unless its parameter count and its test top-1 on the full
    official test split are the entry's."""
    from zoo.api import build_from_entry
    from zoo.data import load_split
    from zoo.evaluation.evaluate import top1
    from zoo.weights.verify import TOP1_TOLERANCE

    model = build_from_entry(entry, checkpoint)
    num_params = sum(p.numel() for p in model.parameters())
    images, labels = load_split(entry.dataset, "test", data_root)
    accuracy = top1(model, images, labels)
    recorded, n_eval = entry.metrics.get("top1"), entry.metrics.get("n_eval")
    if num_params != entry.num_params or n_eval != len(labels) or not isinstance(recorded, (int, float)) \
            or abs(accuracy - recorded) > TOP1_TOLERANCE:
        raise PublishError(f"{entry.id} from {run_dir}: entry.json says top-1 {recorded}% on {n_eval} images and "
                           f"{entry.num_params} parameters; the checkpoint has {num_params} parameters and measures "
                           f"{accuracy:.2f}% on the {len(labels)}-image test split")


def publish_run(run_dir: Path, manifest_file: Path, data_root: Path | None = None) -> Entry:
    """Check a finished run (:func:`check_run`), copy its checkpoint into ``weights/`` beside ``manifest_file`` and
    record its entry."""
    entry, checkpoint = read_run_entry(run_dir)
    check_run(run_dir, entry, checkpoint, data_root)
    return install_run(entry, checkpoint, manifest_file)


def install_run(entry: Entry, checkpoint: Path, manifest_file: Path) -> Entry:
    """Copy ``checkpoint`` (already checked against ``entry``) into ``weights/`` beside ``manifest_file`` and record
    ``entry`` there."""
    target = Path(manifest_file).parent / str(entry.file)
    target.parent.mkdir(parents=True, exist_ok=True)
    def copy_verified(tmp: str) -> None:
        shutil.copyfile(checkpoint, tmp)
        if sha256_file(Path(tmp)) != entry.sha256:
            raise PublishError(f"copy of {checkpoint} to {target.parent} does not match its SHA-256")

    atomic_write(target, copy_verified)
    update_manifest(Path(manifest_file), entry)
    return entry


def update_manifest(manifest_file: Path, entry: Entry, *, replace_published: bool = True,
                    expect_sha256: str | None = None) -> None:
    """Add or replace ``entry`` (keeping the manifest's file mode); delete the file of the entry it replaces if no
    longer referenced and not named by the manifest at git ``HEAD``. A pending ``entry`` replaces a published one
    only with ``replace_published``. With ``expect_sha256``, the entry is written only if the manifest's entry still
    has that checkpoint (a figure measured on a file another process replaced meanwhile raises, writing nothing)."""
    with FileLock(str(manifest_file) + ".lock"):  # parallel training runs each add their entry
        exists = manifest_file.is_file()
        current = read_manifest(manifest_file) if exists else Manifest({})
        mode = stat.S_IMODE(manifest_file.stat().st_mode) if exists else 0o644
        old = current.entries.get(entry.id)
        if expect_sha256 is not None and (old is None or old.sha256 != expect_sha256):
            now = "no entry" if old is None else f"checkpoint {str(old.sha256)[:12]}"
            raise PublishError(f"{entry.id} changed while it was measured: the manifest now has {now}, not the "
                               f"measured {expect_sha256[:12]}; nothing written")
        if old is not None and old.published and not entry.published and not replace_published:
            raise PublishError(f"{entry.id} is published ({old.file}, top-1 {old.metrics.get('top1')}%); turning it "
                               "back into a pending entry needs --replace-published (its file is kept)")
        write_manifest(current.with_entry(entry), manifest_file)
        os.chmod(manifest_file, mode)
    if old is not None and old.file and old.file != entry.file and old.file not in files_named_at_head(manifest_file):
        (manifest_file.parent / old.file).unlink(missing_ok=True)


def files_named_at_head(manifest_file: Path) -> set[str]:
    """The checkpoint files the committed version of ``manifest_file`` names (empty outside a git checkout or for a
    manifest git does not track): files a working-tree edit must never delete."""
    folder = Path(manifest_file).resolve().parent
    try:
        root = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True,
                              check=True).stdout.strip()
        relative = Path(manifest_file).resolve().relative_to(Path(root).resolve())
        committed = subprocess.run(["git", "show", f"HEAD:{relative.as_posix()}"], cwd=root, capture_output=True,
                                   text=True, check=True).stdout
    except (OSError, ValueError, subprocess.CalledProcessError):
        return set()
    try:
        return {str(e.file) for e in Manifest.from_dict(json.loads(committed)).entries.values() if e.file}
    except (ValueError, KeyError, TypeError):
        return set()


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
