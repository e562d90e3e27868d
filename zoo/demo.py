"""``python -m zoo.demo``: load every published MNIST model through ``hubconf.py`` and evaluate it on the
MNIST test set bundled with the package. Runs fully offline."""
from __future__ import annotations

import time

import torch

from zoo.api import get_weights, list_models
from zoo.data import load_split
from zoo.evaluation.evaluate import top1
from zoo.weights.paths import REPO_ROOT


def main() -> int:
    """Evaluate each MNIST checkpoint and compare with the manifest; non-zero exit on a mismatch."""
    images, labels = load_split("mnist", "test")
    print(f"MNIST test split: {len(labels)} images\n")
    print(f"{'model':26s} {'rule':32s} {'top-1':>7s} {'manifest':>9s} {'load+eval':>10s}")
    mismatches = 0
    for model_id in list_models("*.mnist"):
        entrypoint = model_id.split(".")[0]
        start = time.perf_counter()
        model = torch.hub.load(str(REPO_ROOT), entrypoint, weights="mnist", source="local", trust_repo=True)
        accuracy = top1(model, images, labels)
        seconds = time.perf_counter() - start
        meta = get_weights(model_id).meta
        expected = meta["metrics"]["top1"]
        mismatches += abs(accuracy - expected) > 0.05
        print(f"{model_id:26s} {meta['learning_rule']:32s} {accuracy:6.2f}% {expected:8.2f}% {seconds:9.1f}s")
    print("\nall accuracies match the manifest" if not mismatches else f"\n{mismatches} accuracies differ!")
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
