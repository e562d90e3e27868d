"""Retrain the checkpoints published before the engine recorded a run's thread count, CPU and learning curve, so
that every published entry can be re-run with ``training.reproduce``.

    python -m training.retrain                  # every such entry (a fine-tune after the checkpoint it starts from)
    python -m training.retrain bp_mlp.mnist     # these ids
    python -m training.retrain --list           # what is recorded: old, new, difference, replaced

Each id runs its family's recipe as published (``python -m training.train FAMILY --dataset D``, one thread; the
recorded configuration is today's recipe's, which ``tests/test_published.py`` checks) into ``runs/retrain/<id>``,
resumable by running the same command again. When it finishes, the new checkpoint replaces the published one only
if its test top-1 is at least the old figure minus :data:`TOLERANCE_PP`: it is published with ``training.publish``'s
checks and the old file is deleted (measure its attack figures afterwards: ``python -m training.robustness`` fills in
every published entry that lacks them). Otherwise the old checkpoint stays and the record says so. A start and the
legacy fine-tunes that start from it are one group, replaced together or not at all: a kept fine-tune keeps the
checkpoint it started from.
``results/legacy_retrains.json`` records old and new top-1, the difference, whether it replaced, both SHA-256s, wall
time, commit and CPU, written atomically as each run finishes,
so an interrupted session keeps what it finished and a recorded id is not trained again. Until its group is decided,
an id's record keeps its old entry; a group a stopped session began is finished and decided first, by any call.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from training.provenance import REPO_ROOT, cpu_record
from training.publish import check_run, install_run, publish_run, read_run_entry, update_manifest
from zoo.files import atomic_write_text
from zoo.weights.manifest import Entry, Manifest, checkpoint_filename, read_manifest
from zoo.weights.paths import manifest_path

RECORD = REPO_ROOT / "results" / "legacy_retrains.json"
RUNS = REPO_ROOT / "runs" / "retrain"
TOLERANCE_PP = 0.3  # a retrain replaces the published checkpoint unless it is worse than this
UNDECIDED = "old_entry"  # a record's key while its group is undecided: the entry to put back


def is_legacy(entry: Entry) -> bool:
    """A published entry trained before the engine recorded its thread count and learning curve."""
    return entry.published and ("threads" not in entry.recipe or not entry.recipe.get("curve"))


def recipe_init(entry: Entry) -> str | None:
    """The checkpoint ``entry``'s recorded recipe starts from (``None``: from scratch); today's recipe is the same
    (``tests/test_published.py``)."""
    init = entry.recipe["config"].get("init")
    return None if init is None else str(init)


def legacy_ids(manifest: Manifest) -> list[str]:
    """The legacy entries, sorted, each after the legacy entry its recipe fine-tunes from."""
    chosen = sorted(i for i, e in manifest.entries.items() if is_legacy(e))
    starts = {i: recipe_init(manifest.entries[i]) for i in chosen}
    return sorted(chosen, key=lambda i: (starts[i] in chosen, i))


def replaces(old_top1: float, new_top1: float) -> bool:
    """Whether a retrain measuring ``new_top1`` replaces a checkpoint published at ``old_top1`` (both in %)."""
    return round(new_top1 - old_top1, 2) >= -TOLERANCE_PP


def read_record(path: Path | None = None) -> dict[str, Any]:
    """``{id: {"old_top1", "new_top1", "delta_pp", "replaced", ...}}`` as recorded so far in ``path`` (default
    :data:`RECORD`; empty when none)."""
    path = RECORD if path is None else path
    return json.loads(path.read_text()) if path.is_file() else {}


def train_run(entry: Entry, out: Path, data_root: Path | None) -> Entry:
    """Run (or resume, or find finished) the published recipe of ``entry`` in ``out``; its run entry."""
    from training.train import run_to_end

    command = [entry.entrypoint, "--dataset", entry.dataset, "--out", str(out), "--threads", "1", "--no-progress",
               *(["--data-root", str(data_root)] if data_root is not None else [])]
    return run_to_end(command, out)


def retrain(model_id: str, manifest_file: Path, data_root: Path | None, runs: Path = RUNS,
            record_path: Path = RECORD, group: Sequence[str] | None = None) -> dict[str, Any]:
    """Retrain ``model_id``, publish it if :func:`replaces` says so (keeping the old file), and record the outcome as
    undecided until :func:`retrain_group` decides ``group`` (default: ``model_id`` alone): the record keeps the old
    entry, so a session that stops before the group is decided can still put it back; the outcome."""
    old = read_manifest(manifest_file).entries[model_id]
    if not is_legacy(old):
        raise ValueError(f"{model_id} is not a legacy checkpoint: its entry records threads and a learning curve")
    train_run(old, runs / model_id, data_root)
    new, checkpoint = read_run_entry(runs / model_id)
    replaced = replaces(old.metrics["top1"], new.metrics["top1"])
    if replaced:  # refused before anything is recorded, so a run that cannot be published blocks no other call
        check_run(runs / model_id, new, checkpoint, data_root)
    outcome = {"old_top1": old.metrics["top1"], "new_top1": new.metrics["top1"],
               "delta_pp": round(new.metrics["top1"] - old.metrics["top1"], 2), "replaced": replaced,
               "old_sha256": old.sha256, "new_sha256": new.sha256, "wall_time_s": new.recipe["wall_time_s"],
               "git_commit": new.recipe["git_commit"], "cpu": new.recipe.get("cpu", cpu_record()),
               "group": list(group or [model_id]), UNDECIDED: old.to_dict()}
    write_outcomes(record_path, {model_id: outcome})  # first: a replaced entry is always recorded as undecided
    if replaced:
        install_run(new, checkpoint, manifest_file)  # the old file stays until its group is decided
    return outcome


def write_outcomes(record_path: Path, outcomes: dict[str, dict[str, Any]]) -> None:
    """Merge ``outcomes`` into the record at ``record_path`` (written atomically)."""
    record = read_record(record_path) | outcomes
    atomic_write_text(record_path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def ensure_published(model_id: str, outcome: dict[str, Any], manifest_file: Path, runs: Path,
                     data_root: Path | None) -> None:
    """Publish the recorded replacement of ``model_id`` unless the manifest has it (a session stopped between
    recording and publishing it)."""
    if read_manifest(manifest_file).entries[model_id].sha256 != outcome["new_sha256"]:
        publish_run(runs / model_id, manifest_file, data_root)


def delete_unnamed(manifest_file: Path, file: str) -> None:
    """Delete ``file`` (relative to the manifest's folder) unless an entry of the manifest names it."""
    if file not in {e.file for e in read_manifest(manifest_file).entries.values()}:
        (manifest_file.parent / file).unlink(missing_ok=True)


def undecided_groups(record: dict[str, Any]) -> list[list[str]]:
    """The groups a stopped session retrained in part: some member is recorded, its group not yet decided."""
    found = [r["group"] for r in record.values() if UNDECIDED in r]
    return [group for i, group in enumerate(found) if group not in found[:i]]


def retrain_group(group: Sequence[str], manifest_file: Path, data_root: Path | None, runs: Path = RUNS,
                  record_path: Path = RECORD) -> dict[str, dict[str, Any]]:
    """Retrain a start checkpoint and its legacy fine-tunes (``group``, the start first; each fine-tune trains from
    the start as published by then) as one: if any member is kept, the replaced ones are put back to their old
    entries, so a kept fine-tune keeps the checkpoint it started from; otherwise the old files of the replaced members
    are deleted. A member a stopped session already retrained (recorded as undecided) is not trained again. The
    records."""
    earlier = read_record(record_path)
    untrained = [i for i in group if UNDECIDED not in earlier.get(i, {})]
    olds: dict[str, Entry] = {}
    outcomes: dict[str, dict[str, Any]] = {}
    for model_id in group:
        if model_id in untrained:
            olds[model_id] = read_manifest(manifest_file).entries[model_id]
            outcomes[model_id] = retrain(model_id, manifest_file, data_root, runs, record_path, group)
        else:
            olds[model_id] = Entry.from_dict(earlier[model_id][UNDECIDED])
            outcomes[model_id] = earlier[model_id]
            if untrained and outcomes[model_id]["replaced"]:  # a member still to train starts from it
                ensure_published(model_id, outcomes[model_id], manifest_file, runs, data_root)
    kept = [i for i in group if not outcomes[i]["replaced"]]
    for model_id in [i for i in group if outcomes[i]["replaced"]]:
        if kept:  # put back, and the new file goes, though git HEAD may name it (a commit while undecided)
            update_manifest(manifest_file, olds[model_id])
            new_file = Path(str(olds[model_id].file)).with_name(
                checkpoint_filename(model_id, outcomes[model_id]["new_sha256"]))
            delete_unnamed(manifest_file, new_file.as_posix())
            outcomes[model_id] |= {"replaced": False, "note": f"within the tolerance, but {', '.join(kept)} of its "
                                   "group fell outside it and was kept, so the group keeps its old checkpoints"}
        else:
            ensure_published(model_id, outcomes[model_id], manifest_file, runs, data_root)
            delete_unnamed(manifest_file, str(olds[model_id].file))
    decided = {i: {k: v for k, v in outcome.items() if k != UNDECIDED} for i, outcome in outcomes.items()}
    write_outcomes(record_path, decided)
    return decided


def groups(ids: Sequence[str], manifest: Manifest) -> list[list[str]]:
    """``ids`` (in :func:`legacy_ids` order) as retrain groups: each start with the ids that fine-tune from it."""
    starts = [i for i in ids if recipe_init(manifest.entries[i]) not in ids]
    return [[s, *(i for i in ids if recipe_init(manifest.entries[i]) == s)] for s in starts]


def table(record: dict[str, Any]) -> str:
    """The record as a Markdown table: id, old, new, Δ, replaced, wall time."""
    lines = ["| checkpoint | old top-1 | new top-1 | Δ pp | replaced | wall s |", "|---|---|---|---|---|---|"]
    for model_id, r in sorted(record.items()):
        replaced = "undecided" if UNDECIDED in r else "yes" if r["replaced"] else "no"
        lines.append(f"| `{model_id}` | {r['old_top1']:.2f} | {r['new_top1']:.2f} | {r['delta_pp']:+.2f} | "
                     f"{replaced} | {r['wall_time_s']:.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.retrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="legacy checkpoint ids (default: every one not yet recorded)")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--list", action="store_true", help="print the recorded table and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(table(read_record()))
        return 0
    manifest_file = manifest_path()
    manifest = read_manifest(manifest_file)
    legacy = legacy_ids(manifest)
    done = read_record()
    unfinished = undecided_groups(done)  # a stopped session's groups first, whatever ids are given
    started = {i for group in unfinished for i in group}
    wrong = [i for i in args.ids if i not in legacy and i not in started]
    if wrong:
        print(f"error: not legacy checkpoints (published without recorded threads and curve): {wrong}; the legacy "
              f"ones are {legacy}", file=sys.stderr)
        return 2
    try:
        chosen = {i for i in legacy if i in args.ids or (not args.ids and i not in done)}
        chosen |= {i for i in legacy if recipe_init(manifest.entries[i]) in chosen}  # a start brings its fine-tunes
        chosen |= {i for i in legacy if i not in done and any(recipe_init(manifest.entries[c]) == i for c in chosen)}
        chosen -= started  # and a fine-tune its start, unless that was retrained already
        for group in [*unfinished, *groups([i for i in legacy if i in chosen], manifest)]:
            for model_id, r in retrain_group(group, manifest_file, args.data_root).items():
                print(f"{model_id}: {r['old_top1']:.2f} -> {r['new_top1']:.2f} ({r['delta_pp']:+.2f} pp), "
                      f"{'replaced' if r['replaced'] else 'kept the old checkpoint'}", flush=True)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
