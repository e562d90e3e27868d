"""Seed spread: the extra seeds re-run a published entry's recorded command, and the tables show mean ± std."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from training import retrain, seed_spread
from training.readme_table import render_table
from training.report import csv_row
from zoo.api import get_entry, manifest
from zoo.weights.paths import manifest_path


def test_an_extra_seed_repeats_the_recorded_command_with_its_seed_and_threads(tmp_path: Path) -> None:
    entry = get_entry("frsf_mlp.mnist")
    words = seed_spread.command_for_seed("frsf_mlp.mnist", 2, tmp_path / "s2")
    assert " ".join(words).startswith(entry.recipe["command"].removeprefix("python -m training.train "))
    assert words[-7:] == ["--seed", "2", "--out", str(tmp_path / "s2"), "--threads", "1", "--no-progress"]


def test_a_legacy_entry_is_repeated_only_after_its_retrain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused with the remedy until ``training.retrain`` ran it; a kept retrain then stands for seed 0."""
    raw = json.loads(manifest_path().read_text())
    entry = next(e for e in raw["weights"] if e["id"] == "frsf_mlp.mnist")
    entry["recipe"] = {k: v for k, v in entry["recipe"].items() if k not in ("threads", "curve")}  # a legacy entry
    legacy_manifest = tmp_path / "weights_manifest.json"
    legacy_manifest.write_text(json.dumps(raw))
    monkeypatch.setenv("ZOO_MANIFEST", str(legacy_manifest))
    monkeypatch.setattr(retrain, "RECORD", tmp_path / "legacy_retrains.json")
    with pytest.raises(ValueError, match="frsf_mlp.mnist has no recorded run.*python -m training.retrain "
                                         "frsf_mlp.mnist"):
        seed_spread.command_for_seed("frsf_mlp.mnist", 1, Path("x"))
    published = entry["metrics"]["top1"]
    kept = {"new_top1": published - 0.2, "old_top1": published, "replaced": False}
    retrain.RECORD.write_text(json.dumps({"frsf_mlp.mnist": kept}))
    assert seed_spread.command_for_seed("frsf_mlp.mnist", 1, Path("x"))[-5:-1] == ["--out", "x", "--threads", "1"]
    seeds = {"frsf_mlp.mnist": {"seeds": {"1": published - 0.2, "2": published - 0.2}, "runs": {}}}
    assert seed_spread.spread(seeds, get_entry("frsf_mlp.mnist")) == pytest.approx((published - 0.2, 0.0, 3))


def test_tables_show_mean_and_sample_std_over_the_published_and_extra_seeds(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    published = get_entry("frsf_mlp.mnist").metrics["top1"]
    record = {"frsf_mlp.mnist": {"seeds": {"1": published - 0.1, "2": published + 0.1}, "runs": {}}}
    path = tmp_path / "seed_spread.json"
    path.write_text(json.dumps(record))
    monkeypatch.setattr(seed_spread, "RECORD", path)
    assert seed_spread.spread(record, get_entry("frsf_mlp.mnist")) == pytest.approx((published, 0.1, 3))
    row = csv_row(get_entry("frsf_mlp.mnist"), seed_spread.read_record(path))
    assert (row["top1_seed_mean"], row["top1_seed_std"], row["top1_seeds"]) == (published, 0.1, 3)
    assert csv_row(get_entry("fa_mlp.mnist"), record)["top1_seeds"] == 1
    monkeypatch.setattr("training.readme_table.read_record", lambda: record)
    assert f"| {published:.2f} ({published:.2f} ± 0.10 (3) seeds) |" in render_table(manifest())


def test_a_seed_run_is_recorded_once_and_not_repeated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      data_root: Path) -> None:
    original = seed_spread.command_for_seed

    def short(model_id: str, seed: int, out: Path) -> list[str]:  # the recorded command, on 500 images
        return [*original(model_id, seed, out), "--epochs", "1", "--limit", "500", "--test-limit", "200"]

    monkeypatch.setattr(seed_spread, "command_for_seed", short)
    monkeypatch.setattr(seed_spread, "RUNS", tmp_path / "runs")
    record = tmp_path / "seed_spread.json"
    top1 = seed_spread.run_seed("frsf_mlp.mnist", 1, data_root, record)
    block = json.loads(record.read_text())["frsf_mlp.mnist"]
    assert block["seeds"] == {"1": top1} and "--seed 1" in block["runs"]["1"]["command"]
    assert block["runs"]["1"]["cpu"]["isa"] and not list(tmp_path.glob("*.tmp"))
    again = seed_spread.run_seed("frsf_mlp.mnist", 1, data_root, record)  # its finished folder is read, not retrained
    assert again == top1


def test_a_seed_is_recorded_with_its_own_runs_commit_and_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             data_root: Path) -> None:
    """A run a stopped session finished is recorded later, by a process at another commit and perhaps another
    arithmetic: the record names the run's own (as its entry does), not the recording process's."""
    original = seed_spread.command_for_seed
    monkeypatch.setattr(seed_spread, "command_for_seed", lambda model_id, seed, out: [
        *original(model_id, seed, out), "--epochs", "1", "--limit", "300", "--test-limit", "100"])
    monkeypatch.setattr(seed_spread, "RUNS", tmp_path / "runs")
    record = tmp_path / "seed_spread.json"
    seed_spread.run_seed("fa_mlp.mnist", 2, data_root, record)
    entry_file = tmp_path / "runs" / "fa_mlp.mnist" / "seed-2" / "entry.json"
    finished = json.loads(entry_file.read_text())
    run = {"git_commit": "0123456789abcdef0123456789abcdef01234567", "resumed_at": [{"git_commit": "f" * 40}],
           "cpu": {**finished["recipe"]["cpu"], "arithmetic": "native", "isa": "AVX512"}}
    finished["recipe"] |= run
    entry_file.write_text(json.dumps(finished))
    record.unlink()  # the session stopped after the run finished, before it was recorded
    seed_spread.run_seed("fa_mlp.mnist", 2, data_root, record)
    recorded = json.loads(record.read_text())["fa_mlp.mnist"]["runs"]["2"]
    assert {key: recorded[key] for key in run} == run
    assert recorded["command"] == finished["recipe"]["command"]
