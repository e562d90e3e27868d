"""Recompute every published entry's hash, size, parameter count and test accuracy against the manifest."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.api import build_from_entry
from zoo.data import load_split
from zoo.errors import DatasetNotFoundError, HashMismatchError, ZooError
from zoo.evaluation.evaluate import top1
from zoo.weights.manifest import Entry
from zoo.weights.resolve import resolve_file

TOP1_TOLERANCE = 0.05  # percentage points
ROBUSTNESS_TOLERANCE = 0.5  # percentage points of the attack figures (5 of 1000 images: thread-count rounding)


@dataclass(frozen=True)
class Check:
    """One comparison between the manifest and a recomputed value."""

    model_id: str
    name: str
    expected: object
    actual: object
    ok: bool
    missing_data: bool = False  # the check could not run because the dataset is not on this machine

    def __str__(self) -> str:
        mark = "skip" if self.missing_data else "ok  " if self.ok else "FAIL"
        return f"{mark} {self.model_id:28s} {self.name:10s} manifest={self.expected}  recomputed={self.actual}"


def verify_entry(entry: Entry, data_root: Path | None = None) -> list[Check]:
    """All checks of one published entry (file hash and size, parameter count, test top-1, and that the transfer
    source its attack figures record is still the zoo's)."""
    checks = verify_transfer_source(entry)
    try:
        path = resolve_file(entry, "auto")
    except HashMismatchError as exc:
        return [*checks, Check(entry.id, "sha256", entry.sha256, exc.actual, False)]
    except (ZooError, FileNotFoundError) as exc:
        return [*checks, Check(entry.id, "file", entry.file, f"unavailable: {exc}", False)]
    checks += [Check(entry.id, "sha256", entry.sha256, entry.sha256, True),
              Check(entry.id, "size", entry.size_bytes, path.stat().st_size, path.stat().st_size == entry.size_bytes)]
    model = build_from_entry(entry, path)
    num_params = sum(p.numel() for p in model.parameters())
    checks.append(Check(entry.id, "params", entry.num_params, num_params, num_params == entry.num_params))
    try:
        images, labels = load_split(entry.dataset, "test", data_root)
    except DatasetNotFoundError as exc:
        first_line = str(exc).splitlines()[0]
        return [*checks, Check(entry.id, "top1", entry.metrics["top1"], f"not checked: {first_line}", False,
                               missing_data=True)]
    accuracy = top1(model, images, labels)
    expected = entry.metrics["top1"]
    checks.append(Check(entry.id, "top1", expected, accuracy,
                        len(labels) == entry.metrics["n_eval"] and abs(accuracy - expected) <= TOP1_TOLERANCE))
    return checks


def verify_transfer_source(entry: Entry) -> list[Check]:
    """Whether the transfer attack in ``metrics.robustness`` was crafted on the checkpoint the zoo's transfer source
    is now (same id and SHA-256; :func:`zoo.evaluation.attacks.stale_transfer_source`); none without figures."""
    from zoo.api import manifest
    from zoo.evaluation.attacks import stale_transfer_source

    if "robustness" not in entry.metrics:
        return []
    stale = stale_transfer_source(entry, manifest().entries)
    return [Check(entry.id, "transfer", entry.metrics["robustness"]["transfer_source"], stale or "current",
                  stale is None)]


def verify_robustness(entry: Entry, data_root: Path | None = None) -> list[Check]:
    """Recompute ``metrics.robustness`` (the attack comparison; needs the ``analysis`` extra) and compare every
    figure with the manifest's."""
    from zoo.evaluation.attacks import measure_checkpoint

    recorded = entry.metrics.get("robustness")
    if recorded is None:
        return [Check(entry.id, "robustness", None, "not recorded", True)]
    try:
        images, labels = load_split(entry.dataset, "test", data_root)
    except DatasetNotFoundError as exc:
        return [Check(entry.id, "robustness", "recorded", f"not checked: {str(exc).splitlines()[0]}", False,
                      missing_data=True)]
    again = measure_checkpoint(entry.id, images, labels, n_images=recorded["n_eval"])
    checks = []
    for key in sorted(k for k in recorded if k.startswith("top1_") and isinstance(recorded[k], dict)):
        for attack_model, curve in recorded[key].items():
            got = again.get(key, {}).get(attack_model, {})
            worst = max((abs(got[eps] - value) for eps, value in curve.items() if eps in got), default=float("inf"))
            ok = set(got) == set(curve) and worst <= ROBUSTNESS_TOLERANCE
            checks.append(Check(entry.id, f"{key[5:]}:{attack_model}", curve, got, ok))
    temperatures = again["logit_temperature"]
    checks.append(Check(entry.id, "logit_temperature", recorded["logit_temperature"], temperatures,
                        temperatures == recorded["logit_temperature"]))
    return checks
