"""The generated results report (docs/results.md, its pictures, results/results.csv) must match the manifest, and
regenerating it redraws exactly the pictures whose data changed."""
from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest

from training.report import CSV_FILE, FIGURES, REPORT, main, recorded_fingerprints, render, stale, write_report
from zoo.weights.manifest import Manifest, read_manifest
from zoo.weights.paths import REPO_ROOT


def test_report_is_current() -> None:
    assert main(["--check"]) == 0, "run `python -m training.report`"


def test_csv_has_a_row_per_published_checkpoint_with_its_figures() -> None:
    manifest = read_manifest(REPO_ROOT / "weights_manifest.json")
    rows = list(csv.DictReader(io.StringIO(render(manifest)[1])))
    published = sorted(e.id for e in manifest.entries.values() if e.published)
    assert [row["id"] for row in rows] == published
    for row in rows:
        entry = manifest.entries[row["id"]]
        assert float(row["top1"]) == entry.metrics["top1"]
        assert row["sha256"] == entry.sha256
        for sigma, value in entry.metrics["top1_noise"].items():
            assert float(row[f"top1_noise_{sigma}"]) == value
        block = entry.metrics.get("robustness")
        if block:
            for eps, value in block["top1_pgd"]["white_box"].items():
                assert float(row[f"pgd_white_box_{eps}"]) == value


def small_manifest() -> Manifest:
    full = read_manifest(REPO_ROOT / "weights_manifest.json")
    ids = ("bp_mlp.mnist", "fa_mlp.mnist", "krotov_mlp.mnist")
    return Manifest({i: full.entries[i] for i in ids})


def test_regenerating_redraws_only_the_pictures_whose_data_changed(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    manifest = small_manifest()
    drawn = write_report(tmp_path, manifest)
    markdown = (tmp_path / REPORT).read_text()
    assert {p.name for p in drawn} == set(recorded_fingerprints(markdown)) == {
        p.name for p in (tmp_path / FIGURES).glob("*.png")}
    assert "filters-krotov_mlp.mnist.png" in markdown
    assert stale(tmp_path, manifest) == []
    assert write_report(tmp_path, manifest) == []  # nothing changed, nothing redrawn

    fa = manifest.entries["fa_mlp.mnist"]
    changed = manifest.with_entry(dataclasses.replace(fa, metrics={**fa.metrics, "top1": 12.5}))
    assert f"{REPORT} differs from the manifest" in stale(tmp_path, changed)
    assert {p.name for p in write_report(tmp_path, changed)} == {"params-mnist.png", "noise-mnist.png"}
    assert stale(tmp_path, changed) == []
    assert ",12.5," in (tmp_path / CSV_FILE).read_text()

    without_krotov = Manifest({i: e for i, e in changed.entries.items() if not i.startswith("krotov")})
    write_report(tmp_path, without_krotov)
    assert not (tmp_path / FIGURES / "filters-krotov_mlp.mnist.png").exists()  # no picture outlives its section
    (tmp_path / FIGURES / "noise-mnist.png").unlink()
    assert stale(tmp_path, without_krotov) == [f"{FIGURES / 'noise-mnist.png'} is missing"]


def test_a_checkpoint_published_since_the_attacks_were_measured_is_left_out_of_them() -> None:
    """A retrain replaces ``bp_mlp.mnist`` (no attack figures until ``training.robustness`` runs): the report still
    renders, without it in the attack comparison of the networks it is the transfer source of."""
    from training.report import dataset_section

    manifest = read_manifest(REPO_ROOT / "weights_manifest.json")
    source = manifest.entries["bp_mlp.mnist"]
    unmeasured = dataclasses.replace(source, metrics={k: v for k, v in source.metrics.items() if k != "robustness"})
    text, _ = dataset_section(Manifest({**manifest.entries, source.id: unmeasured}), "mnist")
    assert "| `bp_mlp` |" not in text.split("Attack comparison", 1)[1].split("### Alignment", 1)[0]
    assert "| `fa_mlp` |" in text
