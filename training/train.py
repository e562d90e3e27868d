"""Train one checkpoint from its recipe, evaluate it and record it in the weights manifest.

    python -m training.train bp_mlp --dataset mnist [--epochs N] [--seed S] [--init ID] [--data-root DIR]
    python -m training.train bp_mlp --dataset cifar10 --pending "why it is not trained"

The checkpoint goes to ``weights/<id>-<sha256[:8]>.safetensors`` beside the manifest, with every field of
its manifest entry (metrics on the full official test split, recipe, hashes).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from filelock import FileLock

from training.provenance import git_commit, hardware
from training.recipes import load_recipe
from zoo.checkpoint import load_into, save_checkpoint
from zoo.data import DATASETS, load_split
from zoo.evaluate import full_metrics, top1
from zoo.fit import FitConfig, fit
from zoo.integrity import sha256_file
from zoo.manifest import Entry, Manifest, read_manifest, write_manifest
from zoo.paths import manifest_path
from zoo.registry import Family, get_family

WEIGHTS_URL = "https://github.com/bioplausible-zoo/bioplausible-zoo/releases/download/weights-v1/"
HF_ORG = "bioplausible-zoo"
LICENSE = "MIT"
ALIGNMENT_BATCH = 1000  # first test images: the fixed batch of metrics.alignment_deg


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entrypoint", help="model family, e.g. bp_mlp")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--seed", type=int, help="override the recipe's seed")
    parser.add_argument("--init", help="start from this published checkpoint (same learning rule), e.g. bp_mlp.mnist")
    parser.add_argument("--data-root", type=Path, help="dataset root (default: $ZOO_DATA_ROOT or the user cache)")
    parser.add_argument("--limit", type=int, help="train on the first N training images only (smoke runs)")
    parser.add_argument("--manifest", type=Path, help="manifest to update (default: the checkout's)")
    parser.add_argument("--pending", metavar="REASON", help="record a pending entry with this reason; train nothing")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser.parse_args(argv)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces the run (paths and display options left out)."""
    parts = [args.entrypoint, "--dataset", args.dataset]
    for flag in ("epochs", "seed", "init", "limit"):
        value = getattr(args, flag)
        if value is not None:
            parts += [f"--{flag}", str(value)]
    return "python -m training.train " + " ".join(shlex.quote(p) for p in parts)


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe with the command line's overrides applied."""
    config = load_recipe(args.entrypoint, args.dataset)
    if args.epochs is not None:
        config["fit"]["epochs"] = args.epochs
    if args.seed is not None:
        config["fit"]["seed"] = args.seed
    if args.init is not None:
        config["init"] = args.init
    return config


def initial_model(family: Family, arch: dict[str, Any], init: str | None) -> torch.nn.Module:
    """An untrained model, or one holding a published checkpoint of the same rule (for fine-tuning)."""
    model = family.build_model(arch)
    if init is None:
        return model
    import zoo
    from zoo.resolve import resolve_file

    entry = zoo.get_weights(init).entry
    if entry.learning_rule != family.learning_rule or entry.entrypoint != family.name:
        raise ValueError(f"--init {init} was trained by {entry.entrypoint} ({entry.learning_rule}); "
                         f"{family.name} continues only from its own checkpoints ({family.learning_rule})")
    return load_into(model, resolve_file(entry))


def base_entry(family: Family, dataset: str, arch: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any]:
    """Fields shared by published and pending entries."""
    model_id = f"{family.name}.{dataset}"
    return {"id": model_id, "entrypoint": family.name, "dataset": dataset, "learning_rule": family.learning_rule,
            "arch": arch, "input": {"shape": arch["in_shape"], "range": [0.0, 1.0], "dtype": "float32"},
            "recipe": recipe, "hf": {"repo_id": f"{HF_ORG}/{model_id}", "filename": "model.safetensors",
                                     "revision": "main"},
            "license": LICENSE}


def publish(manifest_file: Path, entry_fields: dict[str, Any], model: torch.nn.Module, family: Family,
            arch: dict[str, Any]) -> Entry:
    """Write the checkpoint under its content-addressed name and the entry into the manifest."""
    folder = manifest_file.parent / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        staged = save_checkpoint(model, Path(tmp) / "model.safetensors", entrypoint=family.name, arch=arch)
        sha = sha256_file(staged)
        relative = f"weights/{entry_fields['id']}-{sha[:8]}.safetensors"
        os.replace(staged, manifest_file.parent / relative)
    path = manifest_file.parent / relative
    entry = Entry.from_dict({**entry_fields, "status": "published", "file": relative, "sha256": sha,
                             "size_bytes": path.stat().st_size,
                             "num_params": sum(p.numel() for p in model.parameters()),
                             "url": WEIGHTS_URL + path.name})
    update_manifest(manifest_file, entry)
    return entry


def update_manifest(manifest_file: Path, entry: Entry) -> None:
    """Add or replace ``entry``; delete the file of the entry it replaces if no longer referenced."""
    with FileLock(str(manifest_file) + ".lock"):  # parallel training runs each add their entry
        current = read_manifest(manifest_file) if manifest_file.is_file() else Manifest({})
        old = current.entries.get(entry.id)
        write_manifest(current.with_entry(entry), manifest_file)
    if old is not None and old.file and old.file != entry.file:
        (manifest_file.parent / old.file).unlink(missing_ok=True)


def train(args: argparse.Namespace) -> Entry:
    """Run the recipe and record the result; return the manifest entry."""
    family = get_family(args.entrypoint)
    config = resolved_config(args)
    arch = family.arch_for(args.dataset, **config["arch"])
    fit_config = FitConfig(**config["fit"])
    manifest_file = args.manifest or manifest_path()
    recipe = {"command": command_line(args), "config": config, "seed": fit_config.seed, "epochs": fit_config.epochs}
    if args.pending:
        entry = Entry.from_dict({**base_entry(family, args.dataset, arch, recipe), "status": "pending",
                                 "pending_reason": args.pending})
        update_manifest(manifest_file, entry)
        return entry

    commit = git_commit()  # the code as it is when the run starts
    model = initial_model(family, arch, config["init"])
    train_x, train_y = load_split(args.dataset, "train", args.data_root, limit=args.limit)
    test_x, test_y = load_split(args.dataset, "test", args.data_root)

    def report(epoch: int, loss: float) -> None:
        print(f"epoch {epoch + 1}/{fit_config.epochs}  loss {loss:.4f}  test top-1 {top1(model, test_x, test_y):.2f}%",
              flush=True)

    if config["init"] is not None:
        print(f"start ({config['init']}): test top-1 {top1(model, test_x, test_y):.2f}%", flush=True)
    start = time.perf_counter()
    fit(model, family, train_x, train_y, fit_config, on_epoch_end=report, progress=not args.no_progress)
    wall = time.perf_counter() - start
    metrics = full_metrics(model, test_x, test_y)
    if family.alignment is not None:
        batch = test_x[:ALIGNMENT_BATCH].to(torch.float32).div_(255.0)
        metrics["alignment_deg"] = family.alignment(model, batch, test_y[:ALIGNMENT_BATCH])
    recipe.update({"wall_time_s": round(wall, 1), "hardware": hardware(), "torch_version": torch.__version__,
                   "git_commit": commit})
    entry_fields = {**base_entry(family, args.dataset, arch, recipe), "metrics": metrics}
    entry = publish(manifest_file, entry_fields, model, family, arch)
    print(f"{entry.id}: top-1 {metrics['top1']:.2f}% -> {entry.file} ({wall:.0f} s)", flush=True)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
