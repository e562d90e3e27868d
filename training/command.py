"""Train one checkpoint from its recipe, evaluate it and write it with its manifest entry.

    python -m training.train bp_mlp --dataset mnist                       # the recipe: published into weights/
    python -m training.train bp_mlp --dataset mnist --epochs 1 --limit 2000 --out /tmp/smoke
    python -m training.train bp_mlp --dataset cifar10 --out runs/x --resume   # continue an interrupted run
    torchrun --nproc_per_node=2 -m training.train bp_mlp --dataset mnist --out runs/ddp   # data-parallel

Where a run writes: ``--out DIR`` receives the checkpoint ``<id>-<sha8>.safetensors``, its manifest entry
``entry.json`` (metrics on the full official test split, recipe, learning curve, provenance) and, after every
epoch, the resumable training state; nothing else is touched. Without ``--out`` only a run of the recipe exactly
as written (no ``--epochs``, ``--seed``, ``--limit``, ``--set`` or other ``--init``) may run: it trains in
``training/in_progress/<id>/`` and then publishes into ``weights/`` and ``weights_manifest.json`` (see
:mod:`training.publish`), from a clean git tree only. The same command, seed and thread count give the same checkpoint
bytes on the same kind of CPU.

Runs that outlive a session: ``training/in_progress/`` is tracked by git, so the state a recipe run saves after
every epoch is committed with the checkout and a later session, on any machine, continues it with the same command
plus ``--resume``. The folder of a run is removed once the run is published. A resumed run keeps the commit, thread
count and device it started with (recorded in its ``run.json``); resuming with another thread count or device is
refused, since it would not give the bytes the recorded command gives.

(This module holds the command line: its arguments, the configuration a command resolves to and how it departs
from the recipe; :mod:`training.publish` reads a recorded command back through the same functions.)
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any, Sequence

from training.recipes import apply_override, effective_config, load_recipe, override_keys
from zoo.data import DATASETS
from zoo.engine.devices import DEVICE_CHOICES

# One thread unless asked: with torch's default two threads, 2 of 8 one-epoch bp_mlp runs of one command gave another
# checkpoint (issue 32); with one thread, every run did. Two runs at once, one thread each, also use 2 cores best.
DEFAULT_THREADS = 1


class UsageError(ValueError):
    """A command line the training script refuses, with what to do instead."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed ``python -m training.train`` command line (``argv``, or the process's)."""
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entrypoint", help="model family, e.g. bp_mlp")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--recipe", type=Path, metavar="FILE",
                        help="train with this recipe file (the format of training/recipes/*.json) instead of the "
                             "zoo's recipe of the family; a departure, so it needs --out")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--seed", type=int, help="override the recipe's seed")
    parser.add_argument("--init", help="start from this published checkpoint (same learning rule), e.g. bp_mlp.mnist")
    parser.add_argument("--limit", type=int, help="train on the first N training images only (smoke runs)")
    parser.add_argument("--val", type=int, metavar="N",
                        help="hold out N training images (the same seeded draw in every run) and record their top-1 "
                             "after every epoch: for choosing a recipe without the test split (never published)")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test images only (smoke runs)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one recipe value, e.g. fit.rule.lr=0.01 or arch.dropout=0 (JSON values)")
    parser.add_argument("--out", type=Path, help="write the checkpoint, entry.json and the resumable state here")
    parser.add_argument("--resume", action="store_true", help="continue from the state saved in the run folder")
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} (default: auto)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch CPU threads (default {DEFAULT_THREADS}: the same command then gives the same "
                             "bytes; with more threads some CPU kernels do not)")
    parser.add_argument("--data-root", type=Path, help="dataset root (default: $ZOO_DATA_ROOT or the user cache)")
    parser.add_argument("--manifest", type=Path, help="manifest a recipe run publishes into (default: the checkout's)")
    parser.add_argument("--pending", metavar="REASON", help="record a pending entry with this reason; train nothing")
    parser.add_argument("--replace-published", action="store_true",
                        help="with --pending: allow replacing a published entry (its checkpoint file is kept)")
    parser.add_argument("--list-options", action="store_true",
                        help="print every key --set accepts with its recipe value, and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, one line per epoch")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser.parse_args(argv)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces the run (paths, device and display options left out)."""
    parts = [args.entrypoint, "--dataset", args.dataset]
    for flag in ("recipe", "epochs", "seed", "init", "limit", "test_limit", "val"):
        value = getattr(args, flag)
        if value is not None:
            parts += [f"--{flag.replace('_', '-')}", str(value)]
    for override in args.overrides:
        parts += ["--set", override]
    return "python -m training.train " + " ".join(shlex.quote(p) for p in parts)


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe with the command line's overrides applied."""
    config = load_recipe(args.entrypoint, args.dataset, args.recipe)
    if args.epochs is not None:
        config["fit"]["epochs"] = args.epochs
    if args.seed is not None:
        config["fit"]["seed"] = args.seed
    if args.init is not None:
        config["init"] = args.init
    if args.overrides:
        accepted = override_keys(args.entrypoint, args.dataset, config)
        for override in args.overrides:
            apply_override(config, override, accepted)
    return config


def departures(args: argparse.Namespace) -> list[str]:
    """How the command line departs from the recipe as written (empty for a recipe run)."""
    recipe = effective_config(args.entrypoint, args.dataset, load_recipe(args.entrypoint, args.dataset, args.recipe))
    out = ([f"--recipe {args.recipe}"] if args.recipe is not None else []) + [f"--set {o}" for o in args.overrides]
    if args.limit is not None:
        out.append(f"--limit {args.limit}")
    if args.test_limit is not None:
        out.append(f"--test-limit {args.test_limit}")
    if args.val is not None:
        out.append(f"--val {args.val}")
    if args.epochs is not None and args.epochs != recipe["fit"]["epochs"]:
        out.append(f"--epochs {args.epochs}")
    if args.seed is not None and args.seed != recipe["fit"]["seed"]:
        out.append(f"--seed {args.seed}")
    if args.init is not None and args.init != recipe["init"]:
        out.append(f"--init {args.init}")
    return out


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse values that cannot make a run, naming what is accepted."""
    for flag, value in (("--limit", args.limit), ("--test-limit", args.test_limit), ("--val", args.val)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive number of images, got {value}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
