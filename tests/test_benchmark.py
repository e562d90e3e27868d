"""`training.benchmark` (`python -m zoo benchmark`): called again on the same folder, it reads the runs it finished
and trains only the seeds that are missing."""
from __future__ import annotations

from pathlib import Path

import pytest

from training import benchmark


def test_seeds_are_added_to_a_finished_benchmark_without_training_it_again(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "bench"
    smoke = ["fa_mlp", "--dataset", "mnist", "--out", str(out), "--epochs", "1", "--limit", "600", "--val", "500",
             "--test-limit", "300", "--attack-images", "20", "--data-root", str(data_root)]
    assert benchmark.main(smoke) == 0
    first = out / "seed-0" / "entry.json"
    finished = (first.read_text(), first.stat().st_mtime_ns)
    assert benchmark.main([*smoke, "--seeds", "0", "1"]) == 0
    assert (first.read_text(), first.stat().st_mtime_ns) == finished, "seed 0 is read, neither trained nor measured"
    assert (out / "seed-1" / "entry.json").is_file()
    report = (out / "report.md").read_text()
    assert "`seed-0`" in report and "`seed-1`" in report
    assert len((out / "results.csv").read_text().splitlines()) == 3  # the header and a row per seed


def test_a_finished_seed_of_another_command_is_refused_not_reported(tmp_path: Path, data_root: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    smoke = ["fa_mlp", "--dataset", "mnist", "--out", str(out), "--limit", "600", "--val", "500", "--test-limit",
             "300", "--attack-images", "20", "--data-root", str(data_root)]
    assert benchmark.main([*smoke, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert benchmark.main([*smoke, "--epochs", "2"]) == 2
    assert "holds a finished run of another command" in capsys.readouterr().err
