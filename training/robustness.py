"""Measure the attack comparison of published checkpoints and record it as their ``metrics.robustness``.

    python -m training.robustness                      # every published checkpoint that lacks it or whose
                                                       # transfer source was replaced since
    python -m training.robustness fa_mlp.mnist --force # these ids, measured again
    python -m training.robustness runs/my_rule         # a training run's folder: written into its entry.json

FGSM and PGD at the dataset's ε grid, white-box, through the rule's own gradient (where the model has rule layers)
and transferred from the backprop model of the same architecture (:mod:`zoo.evaluation.attacks`), on the first
1,000 test images. Each entry is written to the manifest as soon as it is measured (atomically, under the
manifest's lock), so an interrupted run keeps what it finished. Needs the ``analysis`` extra (foolbox).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from training.publish import PublishError, update_manifest
from zoo.api import get_entry
from zoo.data import load_split
from zoo.evaluation.attacks import ATTACK_IMAGES, measure_checkpoint, stale_transfer_source
from zoo.weights.manifest import Entry, read_manifest
from zoo.weights.paths import manifest_path
from zoo.weights.run_folder import is_run_folder, read_run_folder, write_run_entry


def to_measure(manifest_file: Path, ids: Sequence[str], force: bool) -> list[str]:
    """The ids to measure: ``ids`` (each published, or a training run's folder), else every published entry without
    the figures or with figures whose transfer source is no longer the zoo's (:func:`stale_transfer_source`: a
    retrain replaced it); backprop models first, since they are the transfer sources of the others."""
    entries = read_manifest(manifest_file).entries
    unknown = [i for i in ids if not is_run_folder(i) and (i not in entries or not entries[i].published)]
    if unknown:
        raise ValueError(f"not published checkpoints or run folders: {unknown}")
    chosen = list(ids) or [i for i, e in entries.items() if e.published]
    chosen = [i for i in chosen if force or ids or "robustness" not in entries[i].metrics
              or stale_transfer_source(entries[i], entries) is not None]
    return sorted(chosen, key=lambda i: (not i.startswith("bp_"), i))


def record(manifest_file: Path, model_id: str, block: dict[str, Any], measured_sha256: str | None) -> None:
    """Add ``block`` as ``metrics.robustness`` to the entry of ``model_id``: in the manifest, only if its checkpoint
    is still the measured one (``measured_sha256``; a retrain may replace it meanwhile: then
    :class:`~training.publish.PublishError`), or in the run folder's ``entry.json``."""
    if is_run_folder(model_id):
        current = read_run_folder(model_id)
        write_run_entry(model_id, dataclasses.replace(current, metrics={**current.metrics, "robustness": block}))
        return
    current = read_manifest(manifest_file).entries[model_id]
    update_manifest(manifest_file, Entry.from_dict({**current.to_dict(), "metrics": {**current.metrics,
                                                                                       "robustness": block}}),
                    expect_sha256=measured_sha256)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.robustness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="checkpoint ids or training run folders (default: every published "
                                               "checkpoint lacking the figures)")
    parser.add_argument("--force", action="store_true", help="measure again where figures exist")
    parser.add_argument("--images", type=int, default=ATTACK_IMAGES, help="first N test images (default 1000)")
    parser.add_argument("--data-root", type=Path)
    args = parser.parse_args(argv)
    manifest_file = manifest_path()  # $ZOO_MANIFEST points elsewhere; the models load from the same manifest
    changed = []
    for model_id in to_measure(manifest_file, args.ids, args.force):
        start = time.perf_counter()
        entry = get_entry(model_id)
        images, labels = load_split(entry.dataset, "test", args.data_root)
        block = measure_checkpoint(model_id, images, labels, n_images=args.images)
        try:
            record(manifest_file, model_id, block, entry.sha256)
        except PublishError as exc:
            print(f"{model_id}: not recorded: {exc}", file=sys.stderr, flush=True)
            changed.append(model_id)
            continue
        pgd = block["top1_pgd"]
        print(f"{model_id}: PGD top-1 by attack model {pgd} ({time.perf_counter() - start:.0f} s)", flush=True)
    if changed:
        print(f"measure these again: python -m training.robustness {' '.join(changed)}", file=sys.stderr)
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
