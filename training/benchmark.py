"""Benchmark a family (a plugin rule's included) under the zoo's protocol, beside the zoo's published checkpoints.

    python -m training.benchmark FAMILY --dataset D --out DIR [--recipe FILE] [--seeds 0 1 2] [--epochs N]
    python -m zoo benchmark ...                                                  # the same command

For each seed it trains the family (``training.train`` with ``--val``: the validation split held out of the training
images with the zoo's fixed draw, 10,000 images for MNIST / Fashion-MNIST and 5,000 for CIFAR-10 as BioTorch does)
into ``DIR/seed-<S>``, a run folder like any other, and measures the attack comparison there (``training.robustness``:
FGSM and PGD white-box, through the rule's own gradient and transferred from ``bp_<architecture>``). It then writes

* ``DIR/report.md``: validation and test top-1, Gaussian noise, PGD under each attack model and the alignment angles
  of the run(s) (mean ± std over the seeds) beside every published checkpoint of the same architecture and dataset;
* ``DIR/results.csv``: a row per seed in the columns of ``results/results.csv``;
* ``DIR/pictures/``: accuracy against noise σ and attack ε, and the learning curves (needs matplotlib).

The published checkpoints trained on the whole training split; the runs here on what the validation split leaves,
which the report says. Calling it again with the same ``--out`` reads the runs an earlier call finished (and resumes
one it began) and measures only what is missing, so seeds can be added to a benchmark.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Sequence

from training import robustness
from training.report import CLAIM_EPSILON, csv_row, csv_text
from training.train import run_to_end
from zoo.api import manifest
from zoo.errors import MissingExtraError, ZooError
from zoo.evaluation.attacks import ATTACK_IMAGES
from zoo.evaluation.metric_grid import ATTACK_MODELS, NOISE_SIGMAS
from zoo.registry import get_family
from zoo.weights.manifest import Entry
from zoo.weights.run_folder import read_run_folder

VALIDATION_IMAGES = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 5_000}


def neighbours(family_name: str, dataset: str) -> list[Entry]:
    """The published checkpoints of ``dataset`` whose network is the same architecture as ``family_name``'s (for a
    rule's own network, the other checkpoints of that family), by id."""
    family = get_family(family_name)
    same = [e for e in manifest().entries.values() if e.published and e.dataset == dataset
            and (get_family(e.entrypoint).architecture == family.architecture if family.architecture is not None
                 else e.entrypoint == family_name)]
    return sorted(same, key=lambda e: e.id)


def _cells(entry: Entry, dataset: str) -> list[str]:
    metrics = entry.metrics
    eps = CLAIM_EPSILON[dataset]
    block = metrics.get("robustness", {})
    pgd = [f"{block['top1_pgd'][m][eps]:.1f}" if m in block.get("top1_pgd", {}) else "—" for m in ATTACK_MODELS]
    angles = metrics.get("alignment_deg") or {}
    val = entry.recipe.get("validation", {}).get("top1")
    return [f"{val:.2f}" if val is not None else "—", f"{metrics['top1']:.2f}",
            *(f"{metrics['top1_noise'][s]:.1f}" for s in NOISE_SIGMAS), *pgd,
            f"{statistics.fmean(angles.values()):.1f}" if angles else "—"]


def _spread(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def report_text(family_name: str, dataset: str, runs: Sequence[Entry], published: Sequence[Entry],
                pictures: Sequence[Path], out: Path) -> str:
    """The Markdown report of the runs beside the published checkpoints."""
    family = get_family(family_name)
    eps = CLAIM_EPSILON[dataset]
    first = runs[0].recipe
    header = ["model", "val top-1", "test top-1", *(f"noise σ={s}" for s in NOISE_SIGMAS),
              *(f"PGD {m.replace('_', ' ')} ε={eps}" for m in ATTACK_MODELS), "mean alignment (°)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in runs:
        lines.append(f"| **`{Path(str(entry.location)).parent.name}`** ({family_name}) | "
                     + " | ".join(_cells(entry, dataset)) + " |")
    for entry in published:
        lines.append(f"| `{entry.id}` | " + " | ".join(_cells(entry, dataset)) + " |")
    test = [e.metrics["top1"] for e in runs]
    val = [e.recipe["validation"]["top1"] for e in runs]
    origin = f" from {family.plugin}" if family.plugin else ""
    parts = [
        f"# Benchmark: `{family_name}` on {dataset}\n",
        f"`{family_name}`{origin}: {family.summary}\n",
        f"**Protocol.** {len(runs)} seed(s) ({', '.join(str(e.recipe['seed']) for e in runs)}), "
        f"{first['epochs']} epoch(s) each, with the configuration recorded in each run's `entry.json` "
        f"(`{first['command']}`). Each run trained on the training images left after holding out "
        f"{first['validation']['n']:,} for validation (the zoo's fixed draw, seed {first['validation']['seed']}); the "
        "published checkpoints below trained on the whole training split with their own recipes. Test top-1 on "
        f"{runs[0].metrics['n_eval']:,} test images; attacks on the first "
        f"{runs[0].metrics.get('robustness', {}).get('n_eval', 0):,}.\n",
        f"**Result.** Validation top-1 {_spread(val)} %, test top-1 {_spread(test)} % "
        f"(mean ± std over {len(runs)} seeds)." if len(runs) > 1 else
        f"**Result.** Validation top-1 {val[0]:.2f} %, test top-1 {test[0]:.2f} % (one seed: no spread measured).",
        "",
        "\n".join(lines),
        "",
        "PGD: top-1 (%) under 20-step PGD at the dataset's summary ε, crafted on the model itself (white box), "
        "through the rule's own backward pass (— where the model has none) and transferred from the backprop model "
        "of the architecture. Mean alignment: the angle between the rule's update and the backprop gradient, "
        "averaged over layers.",
    ]
    if pictures:
        parts += ["", "## Pictures", "", *(f"![{p.stem}]({p.relative_to(out)})" for p in pictures)]
    return "\n".join(parts) + "\n"


def draw(runs: Sequence[Entry], published: Sequence[Entry], folder: Path) -> list[Path]:
    """Noise and attack curves of runs and published checkpoints, and the runs' learning curves (matplotlib);
    none without matplotlib, with one line saying so."""
    from zoo.evaluation.curves import save_curves
    from zoo.evaluation.robustness_plots import write_robustness_curves

    try:
        paths = write_robustness_curves([*runs, *published], folder)
        paths.append(save_curves(runs, folder / "curves.png"))
    except MissingExtraError as exc:
        print(f"no pictures: {exc}", file=sys.stderr)
        return []
    return [p for p in paths if p.suffix == ".png"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", help="model family, built-in or a plugin's (python -m zoo list --all)")
    parser.add_argument("--dataset", required=True, choices=sorted(VALIDATION_IMAGES))
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and the report")
    parser.add_argument("--recipe", type=Path, help="recipe file (default: the zoo's recipe of the family)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--val", type=int, help="validation images held out (default: 10,000 for MNIST and "
                                                "Fashion-MNIST, 5,000 for CIFAR-10)")
    parser.add_argument("--limit", type=int, help="train on the first N remaining training images (smoke runs)")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test images (smoke runs)")
    parser.add_argument("--attack-images", type=int, default=ATTACK_IMAGES, help="images attacked (default 1000)")
    parser.add_argument("--data-root", type=Path)
    args = parser.parse_args(argv)
    try:
        get_family(args.family)  # an unknown family: close matches, before anything trains
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    val = args.val if args.val is not None else VALIDATION_IMAGES[args.dataset]
    runs = []
    for seed in args.seeds:
        folder = args.out / f"seed-{seed}"
        command = [args.family, "--dataset", args.dataset, "--out", str(folder), "--seed", str(seed), "--val",
                   str(val), "--no-progress"]
        for flag, value in (("--recipe", args.recipe), ("--epochs", args.epochs), ("--limit", args.limit),
                            ("--test-limit", args.test_limit), ("--data-root", args.data_root)):
            if value is not None:
                command += [flag, str(value)]
        try:
            run = run_to_end(command, folder)  # a folder an earlier call trained (or began) is read (or resumed)
        except (RuntimeError, ValueError, ZooError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if run.metrics.get("robustness", {}).get("n_eval") != args.attack_images:
            measure = [str(folder), "--images", str(args.attack_images)]
            if robustness.main(measure + (["--data-root", str(args.data_root)] if args.data_root else [])) != 0:
                return 2
        runs.append(read_run_folder(folder))
    published = neighbours(args.family, args.dataset)
    pictures = draw(runs, published, args.out / "pictures")
    (args.out / "results.csv").write_text(csv_text([csv_row(e) for e in runs]))
    (args.out / "report.md").write_text(report_text(args.family, args.dataset, runs, published, pictures, args.out))
    print(args.out / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
