"""Seed spread: more seeds of a published checkpoint's recipe, so a difference between two rules can be read against
the spread of one rule. The extra runs are measured, not published.

    python -m training.seed_spread bp_mlp.mnist fa_mlp.mnist [--seeds 1 2]   # runs what is missing, records it
    python -m training.seed_spread --list                                    # what is recorded

For each id it re-runs the recorded command of the published entry with ``--seed S`` (one thread, like the recipe
runs) into ``runs/seed_spread/<id>/seed-<S>`` (untracked: the checkpoints are not kept in git) and records the test
top-1, commit and CPU in ``results/seed_spread.json`` as soon as each run finishes (written atomically), so an
interrupted session keeps what it finished and a run that already has a figure is not repeated. The published
checkpoint is seed ``recipe.seed`` (0); with two more seeds the README's results table and ``results/results.csv``
show mean ± std over the three. A checkpoint published before the engine recorded its runs is repeated only once
``training.retrain`` ran its recipe; if that retrain did not replace it, the retrain stands for seed 0.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from training.provenance import REPO_ROOT
from training.retrain import is_legacy
from training.retrain import read_record as read_retrains
from zoo.api import get_entry
from zoo.files import atomic_write_text
from zoo.weights.manifest import Entry

RECORD = REPO_ROOT / "results" / "seed_spread.json"
RUNS = REPO_ROOT / "runs" / "seed_spread"
EXTRA_SEEDS = (1, 2)
PROVENANCE = ("command", "git_commit", "cpu", "resumed_at", "wall_time_s")  # what a seed's record keeps of its run


def read_record(path: Path = RECORD) -> dict[str, Any]:
    """``{id: {"seeds": {seed: top1}, "runs": {seed: provenance}}}`` as recorded so far (empty when none)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def seed_zero_top1(entry: Entry) -> float:
    """The test top-1 of seed 0 of ``entry``'s recipe: the published figure, or for a legacy checkpoint whose retrain
    was kept out (:mod:`training.retrain`) the retrain's, so that every seed of a spread ran on today's engine."""
    kept = kept_retrain(entry)
    return float(entry.metrics["top1"]) if kept is None else float(kept["new_top1"])


def kept_retrain(entry: Entry) -> dict[str, Any] | None:
    """The recorded retrain of a legacy ``entry`` that did not replace it; ``None`` for any other entry."""
    if not is_legacy(entry):
        return None
    done = read_retrains().get(entry.id)
    return done if done is not None and not done["replaced"] else None


def spread(record: dict[str, Any], entry: Entry) -> tuple[float, float, int] | None:
    """Mean, sample standard deviation and count of the test top-1 over seed 0 (:func:`seed_zero_top1`) and the
    recorded seeds of ``entry``; ``None`` until at least one extra seed is recorded."""
    extra = record.get(entry.id, {}).get("seeds", {})
    if not extra:
        return None
    values = [seed_zero_top1(entry), *extra.values()]
    return statistics.fmean(values), statistics.stdev(values), len(values)


def spread_text(record: dict[str, Any], entry: Entry) -> str:
    """``"98.49 ± 0.05 (3)"``, or ``""`` without extra seeds."""
    found = spread(record, entry)
    return "" if found is None else f"{found[0]:.2f} ± {found[1]:.2f} ({found[2]})"


def command_for_seed(model_id: str, seed: int, out: Path) -> list[str]:
    """The published entry's recorded ``training.train`` arguments with ``--seed`` and ``--out`` added (a legacy
    entry only once ``training.retrain`` ran its recipe on today's engine: one thread, as the retrain)."""
    entry = get_entry(model_id)
    if not entry.published or (is_legacy(entry) and kept_retrain(entry) is None):
        raise ValueError(f"{model_id} has no recorded run to repeat (it was trained before the engine recorded its "
                         f"threads, commit and curve); retrain it first: python -m training.retrain {model_id}")
    words = shlex.split(entry.recipe["command"])
    if words[:3] != ["python", "-m", "training.train"] or "--seed" in words:
        raise ValueError(f"{model_id}: the recorded command {entry.recipe['command']!r} is not a recipe run")
    return [*words[3:], "--seed", str(seed), "--out", str(out), "--threads", str(entry.recipe.get("threads", 1)),
            "--no-progress"]


def run_seed(model_id: str, seed: int, data_root: Path | None, record_path: Path = RECORD) -> float:
    """Train seed ``seed`` of ``model_id``'s recipe (or finish, or read, the run a stopped session left) and record
    its test top-1 with the run's own provenance: the commit and CPU it started with, and where it was resumed."""
    from training.train import run_to_end

    out = RUNS / model_id / f"seed-{seed}"
    command = command_for_seed(model_id, seed, out)
    if data_root is not None:
        command += ["--data-root", str(data_root)]
    entry = run_to_end(command, out)
    record = read_record(record_path)
    block = record.setdefault(model_id, {"seeds": {}, "runs": {}})
    block["seeds"][str(seed)] = entry.metrics["top1"]
    block["runs"][str(seed)] = {key: entry.recipe[key] for key in PROVENANCE if key in entry.recipe}
    atomic_write_text(record_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return float(entry.metrics["top1"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.seed_spread", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="published checkpoint ids")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(EXTRA_SEEDS))
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--list", action="store_true", help="print the recorded spreads and exit")
    args = parser.parse_args(argv)
    record = read_record()
    if args.list:
        for model_id in sorted(record):
            print(f"{model_id:28s} {spread_text(record, get_entry(model_id))}")
        return 0
    try:
        for model_id in args.ids:
            command_for_seed(model_id, 0, Path("."))  # every id checked before anything trains
        for model_id in args.ids:
            for seed in args.seeds:
                if str(seed) in read_record().get(model_id, {}).get("seeds", {}):
                    continue
                top1 = run_seed(model_id, seed, args.data_root)
                now = spread_text(read_record(), get_entry(model_id))
                print(f"{model_id} seed {seed}: {top1:.2f}%  ->  {now}", flush=True)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
