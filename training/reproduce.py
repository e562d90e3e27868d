"""Re-run a published checkpoint's recipe from its recorded code and compare the result with the published file.

    python -m training.reproduce fa_mlp.fashion_mnist [--out DIR] [--data-root DIR]

The recorded commit is checked out into a temporary git worktree; the recorded command runs there with the
recorded seed, thread count, process count and device, starting (for a fine-tune) from the recorded starting
checkpoint, found by its SHA-256 whatever the manifest at that commit says. The report says whether the bytes are
identical; if not, the first epoch where the learning curve departs, the top-1 difference and the largest weight
difference; and the CPU model and instruction set of both runs (identical bytes are only expected on the same kind
of CPU). Exit status: 0 identical, 1 different, 2 could not reproduce (no recorded commit, uncommitted code, an
entry trained before the engine recorded its threads and curve, a missing starting checkpoint, a failed run; the
message says what ``training.retrain`` measured for such an entry).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import load_file

from training import arithmetic
from training.provenance import REPO_ROOT
from training.retrain import RECORD, is_legacy, read_record
from zoo.weights.integrity import sha256_file
from zoo.weights.manifest import Entry, Manifest, read_manifest
from zoo.weights.paths import MANIFEST_NAME, manifest_path
from zoo.weights.run_folder import ENTRY_JSON

IDENTICAL, DIFFERENT, FAILED = 0, 1, 2
RUN = "run"


class ReproduceError(RuntimeError):
    """The entry cannot be re-run, and why."""


@dataclass(frozen=True)
class Comparison:
    """How a re-run compares with the published checkpoint."""

    identical: bool
    first_departing_epoch: int | None
    top1_recorded: float
    top1_again: float
    max_weight_difference: float
    cpu_recorded: str
    cpu_again: str

    def report(self, model_id: str) -> str:
        """Lines for the terminal."""
        lines = [f"{model_id}: {'identical bytes' if self.identical else 'different bytes'}",
                 f"  top-1 recorded {self.top1_recorded:.2f}%, again {self.top1_again:.2f}% "
                 f"(difference {self.top1_again - self.top1_recorded:+.2f} pp)",
                 f"  CPU recorded: {self.cpu_recorded}", f"  CPU again:    {self.cpu_again}"]
        if not self.identical:
            departs = ("no epoch record to compare" if self.first_departing_epoch is None
                       else f"epoch {self.first_departing_epoch}")
            lines += [f"  the learning curve departs at {departs}",
                      f"  largest weight difference {self.max_weight_difference:.3g}"]
        return "\n".join(lines)


def cpu_text(recipe: dict[str, Any]) -> str:
    """The CPU a recipe records: its ``cpu`` block (model, instruction set, arithmetic), else its ``hardware``
    line."""
    cpu = recipe.get("cpu")
    if isinstance(cpu, dict):
        return f"{cpu.get('model')} ({cpu.get('isa')}, {arithmetic.recorded(cpu)} arithmetic)"
    return str(recipe.get("hardware", "not recorded"))


def first_departure(recorded: list[dict[str, Any]], again: list[dict[str, Any]]) -> int | None:
    """The first epoch whose training loss or test top-1 differs between two curves (``None``: nothing to compare
    or no difference)."""
    for old, new in zip(recorded, again):
        if (old.get("train_loss"), old.get("test_top1")) != (new.get("train_loss"), new.get("test_top1")):
            return int(old["epoch"])
    return None


def compare(recorded: Entry, recorded_file: Path, again: Entry, again_file: Path, cpu_again: str) -> Comparison:
    """Compare a re-run (its entry and checkpoint) with the published entry and file."""
    old, new = load_file(str(recorded_file)), load_file(str(again_file))
    if set(old) != set(new):
        raise ReproduceError(f"the re-run's checkpoint holds other tensors ({sorted(set(old) ^ set(new))})")
    largest = max((float((old[k].double() - new[k].double()).abs().max()) for k in old if old[k].numel()),
                  default=0.0)
    return Comparison(identical=sha256_file(recorded_file) == sha256_file(again_file),
                      first_departing_epoch=first_departure(recorded.recipe.get("curve", []),
                                                            again.recipe.get("curve", [])),
                      top1_recorded=float(recorded.metrics["top1"]), top1_again=float(again.metrics["top1"]),
                      max_weight_difference=largest, cpu_recorded=cpu_text(recorded.recipe), cpu_again=cpu_again)


def recorded_commit(entry: Entry) -> str:
    """The commit the entry was trained at; entries without a clean recorded commit, or trained before the engine
    recorded its thread count and learning curve (:func:`training.retrain.is_legacy`), cannot be reproduced."""
    commit = str(entry.recipe.get("git_commit", ""))
    if not commit or commit == "unknown":
        raise ReproduceError(f"{entry.id} records no commit (trained before the engine recorded one); "
                             f"{retrain_outcome(entry.id)}")
    if "-dirty" in commit:
        raise ReproduceError(f"{entry.id} was trained from uncommitted code ({commit}); nothing can rebuild it; "
                             f"{retrain_outcome(entry.id)}")
    if is_legacy(entry):
        raise ReproduceError(f"{entry.id} was trained at {commit[:12]}, before the engine recorded a run's thread "
                             "count and learning curve, so its recorded command cannot run as recorded; "
                             f"{retrain_outcome(entry.id)}")
    return commit


def retrain_outcome(model_id: str) -> str:
    """What ``training.retrain`` did for ``model_id``, or how to run it."""
    done = read_record().get(model_id)
    if done is None:
        return f"`python -m training.retrain {model_id}` retrains it with today's engine"
    outcome = "replaced it" if done["replaced"] else "was not published"
    return (f"`python -m training.retrain` with today's engine gave {done['new_top1']:.2f} % against the old "
            f"{done['old_top1']:.2f} and {outcome} ({RECORD.relative_to(REPO_ROOT)})")


def place_start(entry: Entry, today: Manifest, code: Path) -> None:
    """Put a fine-tune's starting checkpoint (by its recorded SHA-256) into the worktree ``code`` and make the
    worktree's manifest name it as published, so the recorded ``--init`` finds it."""
    init = entry.recipe.get("config", {}).get("init")
    if init is None:
        return
    then = read_manifest(code / MANIFEST_NAME)
    candidates = [e for e in (today.entries.get(init), then.entries.get(init)) if e is not None and e.published]
    wanted = entry.recipe.get("init_sha256") or (candidates[0].sha256 if candidates else None)
    start = next((e for e in candidates if e.sha256 == wanted), None)
    if start is None:
        raise ReproduceError(f"{entry.id} starts from {init} (SHA-256 {wanted}), which neither the manifest at its "
                             "commit nor today's publishes")
    from zoo.weights.resolve import resolve_file

    target = code / str(start.file)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resolve_file(start), target)
    raw = json.loads((code / MANIFEST_NAME).read_text())
    raw["weights"] = [e for e in raw["weights"] if e["id"] != init] + [start.to_dict()]
    (code / MANIFEST_NAME).write_text(json.dumps(raw, indent=2) + "\n")


def rerun_command(entry: Entry, out: Path, data_root: Path | None) -> list[str]:
    """The recorded command with the recorded threads, processes and device, writing into ``out``."""
    words = shlex.split(str(entry.recipe["command"]))
    if words[:3] != ["python", "-m", "training.train"]:
        raise ReproduceError(f"{entry.id}: the recorded command {entry.recipe['command']!r} is not a training run")
    threads = int(entry.recipe.get("threads") or 1)
    processes = int(entry.recipe.get("processes") or 1)
    device = str(entry.recipe.get("device") or "cpu")
    if device != "cpu" and not torch.cuda.is_available():
        raise ReproduceError(f"{entry.id} was trained on {device}; this machine has no such device")
    runner = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"] if processes > 1 \
        else [sys.executable]
    extra = ["--data-root", str(data_root)] if data_root is not None else []
    return [*runner, "-m", "training.train", *words[3:], "--out", str(out), "--threads", str(threads),
            "--device", device, "--no-progress", *extra]


def rerun_environment(entry: Entry, threads: str, code: Path) -> dict[str, str]:
    """The environment of the re-run: the recorded arithmetic (:mod:`training.arithmetic`) and thread count, the
    worktree's code, and the worktree's own manifest."""
    setting = arithmetic.recorded(entry.recipe.get("cpu"))
    if setting not in arithmetic.CHOICES:
        raise ReproduceError(f"{entry.id} was trained with the {setting} arithmetic, which the engine does not set; "
                             "set those variables and run its recorded command yourself")
    env = arithmetic.environment(setting, os.environ)
    env.pop("ZOO_MANIFEST", None)
    return {**env, "OMP_NUM_THREADS": threads, "PYTHONPATH": str(code)}


def reproduce(model_id: str, work: Path, data_root: Path | None = None) -> Comparison:
    """Re-run ``model_id`` in ``work`` (a worktree ``code`` and the run folder ``run``) and compare."""
    from zoo.weights.resolve import resolve_file

    today = read_manifest(manifest_path())
    if model_id not in today.entries or not today.entries[model_id].published:
        raise ReproduceError(f"{model_id} is not a published checkpoint of {manifest_path()}")
    entry = today.entries[model_id]
    commit = recorded_commit(entry)
    recorded_file = resolve_file(entry)
    code = work / "code"
    git(REPO_ROOT, "worktree", "add", "--detach", str(code), commit)
    try:
        place_start(entry, today, code)
        command = rerun_command(entry, work / RUN, data_root)
        env = rerun_environment(entry, command[command.index("--threads") + 1], code)
        print(f"re-running {model_id} at {commit[:12]}: {shlex.join(command[command.index('training.train'):])}",
              flush=True)
        done = subprocess.run(command, cwd=code, env=env)
        if done.returncode != 0:
            raise ReproduceError(f"the re-run of {model_id} failed (exit status {done.returncode})")
    finally:
        git(REPO_ROOT, "worktree", "remove", "--force", str(code))
    again = Entry.from_dict(json.loads((work / RUN / ENTRY_JSON).read_text()))
    return compare(entry, recorded_file, again, work / RUN / again.filename, cpu_text(again.recipe))


def git(folder: Path, *args: str) -> None:
    result = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise ReproduceError(f"git {' '.join(args)}: {result.stderr.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("id", help="a published checkpoint id, e.g. fa_mlp.fashion_mnist")
    parser.add_argument("--out", type=Path, help="keep the re-run here (default: a temporary folder, removed)")
    parser.add_argument("--data-root", type=Path, help="dataset root (default: $ZOO_DATA_ROOT or the user cache)")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists() and any(args.out.iterdir()):
        print(f"error: --out {args.out} is not empty", file=sys.stderr)
        return FAILED
    work = args.out or Path(tempfile.mkdtemp(prefix="zoo-reproduce-"))
    try:
        comparison = reproduce(args.id, work.resolve(), args.data_root)
    except (ReproduceError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    print(comparison.report(args.id))
    return IDENTICAL if comparison.identical else DIFFERENT


if __name__ == "__main__":
    sys.exit(main())
