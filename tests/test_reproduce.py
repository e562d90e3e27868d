"""`training.reproduce`: a published recipe run re-run from its recorded commit gives its bytes, and a re-run that
differs is reported with where it departs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from training_runs import REPO, TINY_BP_MLP, checkpoint_of, clone_of_this_tree, git, run_entry

from training.reproduce import FAILED, compare, first_departure, main
from training.train import main as train
from zoo.weights.manifest import Entry


def test_a_published_recipe_run_reproduces_to_identical_bytes(tmp_path, data_root) -> None:
    clone = clone_of_this_tree(tmp_path / "clone")
    (clone / "training" / "recipes" / "bp_mlp.json").write_text(json.dumps(TINY_BP_MLP))
    git(clone, "commit", "-qam", "a tiny bp_mlp recipe")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DATA_ROOT": str(data_root)}
    env.pop("ZOO_MANIFEST", None)
    published = subprocess.run([sys.executable, "-m", "training.train", "bp_mlp", "--dataset", "mnist",
                                "--no-progress"], cwd=clone, env=env, capture_output=True, text=True)
    assert published.returncode == 0, published.stderr
    assert not (clone / "training" / "in_progress" / "bp_mlp.mnist").exists(), "publishing removes the run's state"
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "published bp_mlp.mnist")
    again = subprocess.run([sys.executable, "-m", "training.reproduce", "bp_mlp.mnist"], cwd=clone, env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "bp_mlp.mnist: identical bytes" in again.stdout and "difference +0.00 pp" in again.stdout
    assert not git(clone, "worktree", "list").strip().count("\n"), "the temporary worktree is removed"


def test_a_different_rerun_says_where_it_departs(tmp_path, data_root) -> None:
    runs = []
    for seed in ("0", "1"):
        out = tmp_path / seed
        assert train(["bp_mlp", "--dataset", "mnist", "--set", "arch.hidden=[16]", "--epochs", "2", "--limit", "500",
                      "--test-limit", "300", "--seed", seed, "--data-root", str(data_root), "--out", str(out),
                      "--no-progress"]) == 0
        runs.append((Entry.from_dict(run_entry(out)), checkpoint_of(out)))
    (one, one_file), (two, two_file) = runs
    result = compare(one, one_file, two, two_file, "this CPU")
    assert not result.identical and result.first_departing_epoch == 1 and result.max_weight_difference > 0
    assert "the learning curve departs at epoch 1" in result.report("bp_mlp.mnist")
    same = compare(one, one_file, one, one_file, "this CPU")
    assert same.identical and same.max_weight_difference == 0.0 and "identical bytes" in same.report("x")
    assert first_departure(one.recipe["curve"], one.recipe["curve"]) is None


@pytest.mark.parametrize(("recipe", "says"), [
    ({"git_commit": "4450d5d013e1fc97be8b959d82b7892da6bd2ac6-dirty"}, "was trained from uncommitted code"),
    ({"git_commit": "unknown"}, "records no commit"),
    ({"threads": None, "curve": None}, "before the engine recorded a run's thread count and learning curve"),
])
def test_an_entry_without_a_clean_recorded_run_cannot_be_reproduced(recipe: dict[str, object], says: str, tmp_path,
                                                                    monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Refused with the reason and what ``training.retrain`` offers, before any worktree or run."""
    raw = json.loads((REPO / "weights_manifest.json").read_text())
    entry = next(e for e in raw["weights"] if e["id"] == "fa_mlp.mnist")
    for key, value in recipe.items():
        if value is None:
            del entry["recipe"][key]
        else:
            entry["recipe"][key] = value
    manifest = tmp_path / "weights_manifest.json"
    manifest.write_text(json.dumps(raw))
    monkeypatch.setenv("ZOO_MANIFEST", str(manifest))
    assert main(["fa_mlp.mnist"]) == FAILED
    err = capsys.readouterr().err
    assert says in err and "training.retrain" in err
