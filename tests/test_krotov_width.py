"""benchmarks/krotov_width.py: the seed project's width table, its points, its results file and its README block."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from datasets import root_with

from training.readme_table import KROTOV_WIDTH_RESULTS, render_krotov_width
from zoo.weights.manifest import read_manifest
from zoo.weights.paths import REPO_ROOT, manifest_path


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("krotov_width", REPO_ROOT / "benchmarks" / "krotov_width.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_points_are_the_recipes_with_only_the_width_changed() -> None:
    kw = load_benchmark()
    assert kw.train_arguments("krotov_mlp", "cifar10", 2000, smoke=False) == ["krotov_mlp", "--dataset", "cifar10"]
    assert kw.train_arguments("krotov_mlp", "mnist", 500, smoke=False) == [
        "krotov_mlp", "--dataset", "mnist", "--set", "arch.hidden=500"]
    assert kw.train_arguments("bp_mlp", "mnist", 200, smoke=False) == [
        "bp_mlp", "--dataset", "mnist", "--set", "arch.hidden=[200]", "--epochs", str(kw.BP_EPOCHS)]
    assert set(kw.WIDTHS) == set(kw.SEED_FIGURES)
    for dataset, widths in kw.WIDTHS.items():
        for family in ("krotov_mlp", "bp_mlp"):
            assert sorted(kw.SEED_FIGURES[dataset][family]) == list(widths)


def test_a_published_recipe_point_reads_the_manifest_figure_and_others_do_not() -> None:
    kw = load_benchmark()
    entry = read_manifest(manifest_path()).entries["krotov_mlp.mnist"]
    assert entry.published
    row = kw.published_figure("krotov_mlp", "mnist", kw.train_arguments("krotov_mlp", "mnist", 2000, smoke=False))
    assert row is not None and row["top1"] == entry.metrics["top1"] and row["source"] == "manifest (krotov_mlp.mnist)"
    assert kw.published_figure("krotov_mlp", "mnist", kw.train_arguments("krotov_mlp", "mnist", 2000, True)) is None
    assert kw.published_figure("bp_mlp", "mnist", kw.train_arguments("bp_mlp", "mnist", 2000, False)) is None


def test_smoke_refuses_to_overwrite_the_published_table() -> None:
    kw = load_benchmark()
    with pytest.raises(SystemExit):
        kw.main(["--smoke", "--results", str(KROTOV_WIDTH_RESULTS)])


def test_smoke_run_trains_every_point_writes_the_table_and_reuses_finished_points(tmp_path: Path) -> None:
    root_with("cifar10")
    kw = load_benchmark()
    out, results = tmp_path / "runs", tmp_path / "kw.json"
    assert kw.main(["--smoke", "--datasets", "cifar10", "--out", str(out), "--results", str(results),
                    "--threads", "1"]) == 0
    payload = json.loads(results.read_text())
    assert payload["smoke"] is True
    points = {(r["family"], r["width"]): r for r in payload["rows"]}
    assert set(points) == {(f, w) for f in ("krotov_mlp", "bp_mlp") for w in kw.WIDTHS["cifar10"]}
    entries = sorted(out.glob("*/entry.json"))
    assert len(entries) == 4
    for row in points.values():
        assert row["source"].startswith("run (") and 0.0 <= row["top1"] <= 100.0
        saved = json.loads((out / row["source"][5:-1] / "entry.json").read_text())
        assert saved["metrics"]["top1"] == row["top1"]
        assert saved["arch"]["hidden"] in (row["width"], [row["width"]])
    stamps = [e.stat().st_mtime_ns for e in entries]
    assert kw.main(["--smoke", "--datasets", "cifar10", "--out", str(out), "--results", str(results)]) == 0
    assert [e.stat().st_mtime_ns for e in entries] == stamps  # nothing retrained
    table = render_krotov_width(json.loads(results.read_text()))
    assert f"| CIFAR-10 | 1,000 | {points[('krotov_mlp', 1000)]['top1']:.2f} | 46.5 |" in table
    assert "Smoke run" in table and "| MNIST | 200 | — | 95.7 | — | 97.9 |" in table


def test_the_readme_table_comes_from_full_runs_of_the_benchmark_as_it_is_today() -> None:
    kw = load_benchmark()
    payload = json.loads(KROTOV_WIDTH_RESULTS.read_text())
    assert payload["smoke"] is False and payload["bp_epochs"] == kw.BP_EPOCHS
    assert payload["rows"], "results/krotov_width.json holds no measured point"
    for row in payload["rows"]:
        args = kw.train_arguments(row["family"], row["dataset"], row["width"], smoke=False)
        assert row["command"] == "python -m training.train " + " ".join(args)
        assert row["width"] in kw.WIDTHS[row["dataset"]] and 0.0 < row["top1"] <= 100.0
