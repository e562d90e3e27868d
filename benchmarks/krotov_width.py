"""The seed project's width table, reproduced: Krotov-Hopfield (BIO) against one-hidden-layer backprop (BP).

    python benchmarks/krotov_width.py [--datasets mnist cifar10] [--out runs/krotov_width]
                                      [--results results/krotov_width.json] [--threads 1] [--data-root DIR]
    python benchmarks/krotov_width.py --smoke --out /tmp/kw --results /tmp/kw.json   # minutes, not hours

The "Biological_Learning" project (after Krotov & Hopfield, PNAS 2019) reports, for hidden layers of 200 / 500 /
1000 / 2000 units on MNIST and 1000 / 2000 on CIFAR-10, the top-1 of the unsupervised Krotov layer with its BioCell
head and of a backprop net with one hidden layer of the same width (validation accuracies; the zoo's are on the
full official test split). Each point here is one ``python -m training.train`` run in its own folder under
``--out``:

* BIO: ``krotov_mlp`` with its recipe for the dataset and ``arch.hidden`` set to the width. At the recipe's own
  width the command *is* the recipe (no ``--set``): when the manifest already publishes that checkpoint its
  measured figure is read from the manifest (the same command, seed and thread count give the same bytes), and
  otherwise the run is publishable as the family's checkpoint (``python -m training.publish``).
* BP: ``bp_mlp`` with its recipe for the dataset, ``arch.hidden=[width]`` (one hidden layer) and
  :data:`BP_EPOCHS` epochs.

The table (zoo figure beside the seed's, per dataset and width) is printed and written to ``--results`` (JSON,
written to a temporary name and renamed; rewritten after every point, so an interrupted benchmark keeps what it
measured). README.md shows it: ``python -m training.readme_table``. Rerunning skips finished points and continues
an interrupted one (``--resume``). ``--smoke`` trains every point on 500 images for two epochs (one Hebbian) and
evaluates on 500 test images, to check the pipeline; it refuses to overwrite the default results file.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.readme_table import KROTOV_WIDTH_RESULTS, render_krotov_width  # noqa: E402
from training.recipes import load_recipe  # noqa: E402
from zoo.registry import get_family  # noqa: E402
from zoo.weights.manifest import read_manifest  # noqa: E402
from zoo.weights.paths import manifest_path  # noqa: E402

BIO, BP = "krotov_mlp", "bp_mlp"
BP_EPOCHS = 15
WIDTHS = {"mnist": (200, 500, 1000, 2000), "cifar10": (1000, 2000)}
SEED_FIGURES = {  # "Biological_Learning" (validation top-1, %), per family and width
    "mnist": {BIO: {200: 95.7, 500: 96.5, 1000: 97.2, 2000: 97.8}, BP: {200: 97.9, 500: 97.9, 1000: 98.1, 2000: 98.15}},
    "cifar10": {BIO: {1000: 46.5, 2000: 49.0}, BP: {1000: 54.2, 2000: 54.2}},
}
SMOKE = ["--limit", "500", "--test-limit", "500", "--epochs", "2"]


def recipe_width(dataset: str) -> int:
    """The hidden width of ``krotov_mlp``'s recipe for ``dataset``."""
    return int(get_family(BIO).arch_for(dataset, **load_recipe(BIO, dataset)["arch"])["hidden"])


def train_arguments(family: str, dataset: str, width: int, smoke: bool) -> list[str]:
    """The ``training.train`` arguments of one point (without ``--out``)."""
    args = [family, "--dataset", dataset]
    if family == BP:
        args += ["--set", f"arch.hidden=[{width}]"]
    elif width != recipe_width(dataset):
        args += ["--set", f"arch.hidden={width}"]
    if smoke:
        args += SMOKE + (["--set", "fit.rule.hebbian_epochs=1"] if family == BIO else [])
    elif family == BP:
        args += ["--epochs", str(BP_EPOCHS)]
    return args


def published_figure(family: str, dataset: str, args: list[str]) -> dict[str, Any] | None:
    """The manifest's measured figure when this point is a published recipe run, else ``None``."""
    if args != [family, "--dataset", dataset]:
        return None
    entry = read_manifest(manifest_path()).entries.get(f"{family}.{dataset}")
    if entry is None or not entry.published:
        return None
    return {"top1": entry.metrics["top1"], "wall_time_s": entry.recipe.get("wall_time_s"),
            "hardware": entry.recipe.get("hardware"), "git_commit": entry.recipe.get("git_commit"),
            "source": f"manifest ({entry.id})"}


def run_point(family: str, dataset: str, width: int, out: Path, smoke: bool, threads: int | None,
              data_root: Path | None) -> dict[str, Any]:
    """Train (or read back) one point and return its row."""
    args = train_arguments(family, dataset, width, smoke)
    row: dict[str, Any] = {"dataset": dataset, "family": family, "width": width,
                           "command": "python -m training.train " + " ".join(args)}
    known = published_figure(family, dataset, args)
    if known is not None:
        return {**row, **known}
    folder = out / f"{family}.{dataset}.h{width}"
    entry_file = folder / "entry.json"
    if not entry_file.is_file():
        extra = ["--no-progress"] + (["--threads", str(threads)] if threads else [])
        extra += ["--data-root", str(data_root)] if data_root else []
        extra += ["--resume"] if folder.is_dir() else []
        print(f"training {row['command']}", flush=True)
        subprocess.run([sys.executable, "-m", "training.train", *args, "--out", str(folder), *extra],
                       cwd=REPO, check=True)
    entry = json.loads(entry_file.read_text())
    return {**row, "top1": entry["metrics"]["top1"], "wall_time_s": entry["recipe"].get("wall_time_s"),
            "hardware": entry["recipe"].get("hardware"), "git_commit": entry["recipe"].get("git_commit"),
            "source": f"run ({folder.name})"}


def write_results(path: Path, rows: list[dict[str, Any]], smoke: bool) -> None:
    """Write the results JSON atomically (temporary name, then rename)."""
    seed = {d: {f: {str(w): v for w, v in by_width.items()} for f, by_width in fams.items()}
            for d, fams in SEED_FIGURES.items()}
    payload = {"benchmark": "benchmarks/krotov_width.py", "smoke": smoke, "bp_epochs": BP_EPOCHS,
               "seed_figures": seed, "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=sorted(WIDTHS), default=sorted(WIDTHS, reverse=True))
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "krotov_width", help="run folders")
    parser.add_argument("--results", type=Path, default=KROTOV_WIDTH_RESULTS, help="results JSON")
    parser.add_argument("--threads", type=int, help="torch CPU threads per run (default: $OMP_NUM_THREADS)")
    parser.add_argument("--data-root", type=Path, help="dataset root (default: $ZOO_DATA_ROOT or the user cache)")
    parser.add_argument("--smoke", action="store_true", help="500 images, 2 epochs: a pipeline check")
    args = parser.parse_args(argv)
    if args.smoke and args.results.resolve() == KROTOV_WIDTH_RESULTS.resolve():
        parser.error(f"--smoke would overwrite the published table {KROTOV_WIDTH_RESULTS}: pass --results FILE")
    previous = json.loads(args.results.read_text())["rows"] if args.results.is_file() else []
    rows = [r for r in previous if r["dataset"] not in args.datasets]
    for dataset in args.datasets:
        for width in WIDTHS[dataset]:
            for family in (BIO, BP):
                rows.append(run_point(family, dataset, width, args.out, args.smoke, args.threads, args.data_root))
                write_results(args.results, rows, args.smoke)
    print(render_krotov_width(json.loads(args.results.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
