"""The weights manifest schema: valid entries load, every malformed field is rejected by name."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from zoo.errors import ManifestError
from zoo.weights.manifest import Entry, Manifest, read_manifest
from zoo.weights.paths import REPO_ROOT


def published() -> dict[str, Any]:
    sha = "ab" * 32
    return {
        "id": "bp_mlp.mnist", "entrypoint": "bp_mlp", "dataset": "mnist", "learning_rule": "backprop",
        "status": "published", "arch": {"in_shape": [1, 28, 28]},
        "input": {"shape": [1, 28, 28], "range": [0.0, 1.0]},
        "recipe": {"command": "python -m training.train bp_mlp --dataset mnist", "config": {}, "seed": 0,
                   "epochs": 1, "wall_time_s": 1.0, "hardware": "cpu", "torch_version": "2", "git_commit": "x"},
        "hf": {"repo_id": "org/bp_mlp.mnist", "filename": "model.safetensors", "revision": "main"},
        "license": "MIT", "file": f"weights/bp_mlp.mnist-{sha[:8]}.safetensors", "sha256": sha,
        "size_bytes": 10, "num_params": 5, "url": "https://example.org/w.safetensors",
        "metrics": {"top1": 98.0, "n_eval": 10000, "top1_noise": {"0.1": 97.0, "0.2": 90.0, "0.3": 80.0},
                    "top1_fgsm": {"0.05": 50.0, "0.1": 10.0}},
    }


def pending() -> dict[str, Any]:
    raw = published()
    for name in ("file", "sha256", "size_bytes", "num_params", "url", "metrics"):
        del raw[name]
    raw["recipe"] = {k: raw["recipe"][k] for k in ("command", "config", "seed", "epochs")}
    return {**raw, "id": "bp_mlp.cifar10", "dataset": "cifar10", "status": "pending",
            "pending_reason": "CIFAR-10 is not available on the build machines."}


def test_valid_entries_round_trip() -> None:
    doc = {"schema_version": 1, "weights": [published(), pending()]}
    manifest = Manifest.from_dict(doc)
    assert manifest.entries["bp_mlp.mnist"].published
    assert not manifest.entries["bp_mlp.cifar10"].published
    assert Manifest.from_dict(manifest.to_dict()) == manifest


@pytest.mark.parametrize("field", ["sha256", "metrics", "file", "recipe", "hf", "arch"])
def test_missing_field_is_named(field: str) -> None:
    raw = published()
    del raw[field]
    with pytest.raises(ManifestError, match=field):
        Entry.from_dict(raw)


@pytest.mark.parametrize("field, value, message", [
    ("sha256", "xyz", "64 lowercase hex"),
    ("file", "weights/other.safetensors", "'weights/bp_mlp.mnist-abababab.safetensors'"),
    ("dataset", "imagenet", "one of"),
    ("status", "draft", "one of"),
    ("id", "bp_mlp.fashion_mnist", "entrypoint.dataset"),
    ("size_bytes", -1, "positive integer"),
    ("url", "ftp://x", "http"),
])
def test_bad_field_is_rejected_with_what_is_accepted(field: str, value: Any, message: str) -> None:
    raw = published()
    raw[field] = value
    with pytest.raises(ManifestError, match=f"'{field}'.*{message}|{message}"):
        Entry.from_dict(raw)


def test_bad_metrics_are_rejected() -> None:
    raw = published()
    raw["metrics"]["top1"] = 123.0
    with pytest.raises(ManifestError, match="metrics.top1"):
        Entry.from_dict(raw)
    raw = published()
    raw["metrics"]["top1_noise"] = {"0.1": 97.0}
    with pytest.raises(ManifestError, match="metrics.top1_noise"):
        Entry.from_dict(raw)


def test_pending_entry_may_not_carry_results() -> None:
    raw = pending()
    raw["metrics"] = {"top1": 50.0}
    with pytest.raises(ManifestError, match="pending"):
        Entry.from_dict(raw)
    raw = pending()
    del raw["pending_reason"]
    with pytest.raises(ManifestError, match="pending_reason"):
        Entry.from_dict(raw)


def test_document_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="schema_version"):
        Manifest.from_dict({"schema_version": 99, "weights": []})
    with pytest.raises(ManifestError, match="twice"):
        Manifest.from_dict({"schema_version": 1, "weights": [published(), copy.deepcopy(published())]})
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(bad)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "missing.json")
    unknown = published()
    unknown["extra"] = 1
    bad.write_text(json.dumps({"schema_version": 1, "weights": [unknown]}))
    with pytest.raises(ManifestError, match=str(bad)):
        read_manifest(bad)


def test_shipped_manifest_is_valid_and_complete() -> None:
    manifest = read_manifest(REPO_ROOT / "weights_manifest.json")
    assert manifest.entries, "the shipped manifest lists no checkpoint"
    for entry in manifest.entries.values():
        if entry.published:
            path = REPO_ROOT / entry.file
            assert path.is_file(), f"{entry.id}: {entry.file} is missing"
            assert path.stat().st_size == entry.size_bytes
            limit_mb = 32 if entry.dataset == "cifar10" else 16
            assert path.stat().st_size <= limit_mb * 1024 * 1024, f"{entry.id} is over {limit_mb} MB"
            assert entry.metrics["n_eval"] == 10000
