"""`training.retrain`: a checkpoint published before the engine recorded its run is retrained by today's recipe and
replaces the old file only within the tolerance; both figures are recorded either way."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from training_runs import REPO, TINY_BP_MLP, clone_of_this_tree, git

from training.retrain import TOLERANCE_PP, is_legacy, legacy_ids, recipe_init, replaces
from zoo.weights.manifest import Entry, Manifest, read_manifest


def test_the_tolerance_is_the_old_figure_minus_three_tenths() -> None:
    assert TOLERANCE_PP == 0.3
    assert replaces(99.17, 98.87) and replaces(99.17, 99.5) and not replaces(99.17, 98.86)


def test_legacy_ids_put_each_fine_tune_after_the_checkpoint_it_starts_from() -> None:
    entries = read_manifest(REPO / "weights_manifest.json").entries
    stripped = {"fa_mlp.fashion_mnist", "fa_mlp.mnist", "bp_mlp.mnist"}  # as the engine recorded runs before threads
    legacy = Manifest({i: Entry.from_dict({**e.to_dict(), "recipe": {k: v for k, v in e.recipe.items()
                                                                       if k not in ("threads", "curve")}})
                       if i in stripped else e for i, e in entries.items()})
    ids = legacy_ids(legacy)
    assert stripped <= set(ids) and all(is_legacy(legacy.entries[i]) for i in ids)
    assert recipe_init(legacy.entries["fa_mlp.fashion_mnist"]) == "fa_mlp.mnist"
    assert ids.index("fa_mlp.mnist") < ids.index("fa_mlp.fashion_mnist")


def test_a_retrain_replaces_the_old_checkpoint_only_within_the_tolerance(tmp_path: Path, data_root: Path) -> None:
    clone = clone_of_this_tree(tmp_path / "clone")
    manifest_file = clone / "weights_manifest.json"
    manifest = json.loads(manifest_file.read_text())
    old = next(e for e in manifest["weights"] if e["id"] == "bp_mlp.mnist")
    old["recipe"] = {k: v for k, v in old["recipe"].items() if k not in ("threads", "curve")}  # a legacy entry
    manifest_file.write_text(json.dumps(manifest, indent=1) + "\n")
    (clone / "training" / "recipes" / "bp_mlp.json").write_text(json.dumps(TINY_BP_MLP))
    git(clone, "commit", "-qam", "bp_mlp.mnist as a legacy entry; a tiny bp_mlp recipe")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DATA_ROOT": str(data_root)}
    env.pop("ZOO_MANIFEST", None)

    def retrain(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "training.retrain", *args], cwd=clone, env=env,
                              capture_output=True, text=True)

    kept = retrain("bp_mlp.mnist")
    assert kept.returncode == 0, kept.stderr
    assert "kept the old checkpoint" in kept.stdout
    record = json.loads((clone / "results" / "legacy_retrains.json").read_text())["bp_mlp.mnist"]
    assert record["old_top1"] == old["metrics"]["top1"] and record["old_sha256"] == old["sha256"]
    assert not record["replaced"] and record["new_top1"] < old["metrics"]["top1"] - TOLERANCE_PP
    assert record["git_commit"] == git(clone, "rev-parse", "HEAD").strip() and record["wall_time_s"] > 0
    assert json.loads(manifest_file.read_text()) == manifest, "a worse retrain leaves the manifest alone"

    # the same run, now against an old figure exactly the tolerance above it: it replaces the old checkpoint
    old["metrics"]["top1"] = round(record["new_top1"] + TOLERANCE_PP, 2)
    manifest_file.write_text(json.dumps(manifest, indent=1) + "\n")
    git(clone, "commit", "-qam", "a lower old figure")
    replaced = retrain("bp_mlp.mnist")
    assert replaced.returncode == 0, replaced.stderr
    assert "bp_mlp.mnist: " in replaced.stdout and "(-0.30 pp), replaced" in replaced.stdout
    new = read_manifest(manifest_file).entries["bp_mlp.mnist"]
    assert new.sha256 == record["new_sha256"] and not is_legacy(new) and new.recipe["threads"] == 1
    assert new.metrics["top1"] == record["new_top1"] and (clone / str(new.file)).is_file()
    assert not (clone / old["file"]).exists(), "the replaced checkpoint's file is deleted"
    assert json.loads((clone / "results" / "legacy_retrains.json").read_text())["bp_mlp.mnist"]["replaced"]
    listed = retrain("--list")
    assert "| `bp_mlp.mnist` |" in listed.stdout and "| yes |" in listed.stdout
    refused = retrain("bp_mlp.mnist")
    assert refused.returncode == 2 and "not legacy checkpoints" in refused.stderr


def legacy_fa_pair(folder: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """A committed clone of this tree in ``folder`` where ``fa_mlp.mnist`` and its fine-tune ``fa_mlp.fashion_mnist``
    are legacy entries, the start at 10 % (any retrain beats it), the fine-tune at 99.9 % (no retrain comes within the
    tolerance), with a recipe that trains in seconds; the clone and the two old entries."""
    clone = clone_of_this_tree(folder)
    manifest_file = clone / "weights_manifest.json"
    manifest = json.loads(manifest_file.read_text())
    pair = {e["id"]: e for e in manifest["weights"] if e["id"] in ("fa_mlp.mnist", "fa_mlp.fashion_mnist")}
    for entry in pair.values():
        entry["recipe"] = {k: v for k, v in entry["recipe"].items() if k not in ("threads", "curve")}
    pair["fa_mlp.mnist"]["metrics"]["top1"] = 10.0
    pair["fa_mlp.fashion_mnist"]["metrics"]["top1"] = 99.9
    manifest_file.write_text(json.dumps(manifest, indent=1) + "\n")
    tiny = {"entrypoint": "fa_mlp", "selected_on": "test", "notes": "seconds, for this test",
            "defaults": {"arch": {"hidden": [16]}, "fit": {"epochs": 1}},
            "datasets": {"mnist": {}, "fashion_mnist": {"init": "fa_mlp.mnist"}}}
    (clone / "training" / "recipes" / "fa_mlp.json").write_text(json.dumps(tiny))
    (clone / "results" / "legacy_retrains.json").write_text("{}\n")  # tracked, as in the zoo: written between runs
    git(clone, "add", "results/legacy_retrains.json")
    git(clone, "commit", "-qam", "the fa_mlp pair as legacy entries; a tiny fa_mlp recipe")
    return clone, pair


def test_a_start_and_its_fine_tune_are_replaced_together_or_not_at_all(tmp_path: Path, data_root: Path) -> None:
    """A start within the tolerance whose fine-tune falls outside it is put back, so the kept fine-tune still holds
    the checkpoint it started from."""
    clone, pair = legacy_fa_pair(tmp_path / "clone")
    manifest_file = clone / "weights_manifest.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DATA_ROOT": str(data_root)}
    env.pop("ZOO_MANIFEST", None)
    done = subprocess.run([sys.executable, "-m", "training.retrain", "fa_mlp.mnist"], cwd=clone, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fa_mlp.mnist: 10.00 -> " in done.stdout and "fa_mlp.fashion_mnist: 99.90 -> " in done.stdout
    record = json.loads((clone / "results" / "legacy_retrains.json").read_text())
    assert not record["fa_mlp.mnist"]["replaced"] and "fa_mlp.fashion_mnist" in record["fa_mlp.mnist"]["note"]
    assert not record["fa_mlp.fashion_mnist"]["replaced"]
    assert all("-dirty" not in r["git_commit"] for r in record.values()), "results/ is data, not code"
    after = {e["id"]: e for e in json.loads(manifest_file.read_text())["weights"] if e["id"] in pair}
    assert after == pair, "both entries are the old ones again"
    assert all((clone / e["file"]).is_file() for e in pair.values())
    new_start = f"weights/fa_mlp.mnist-{record['fa_mlp.mnist']['new_sha256'][:8]}.safetensors"
    assert not (clone / new_start).exists(), "the put-back start's new file is deleted"


def test_a_group_a_stopped_session_began_is_finished_and_decided_as_one(tmp_path: Path, data_root: Path) -> None:
    """Asked for the fine-tune, the start comes along, is retrained and published; then the fine-tune's run fails
    (here: no Fashion-MNIST files; a killed session alike) and the tree is committed, as at a session's end. The next
    call still retrains the fine-tune as the start's group member and, the fine-tune being kept, puts the start back,
    though the start is no longer a legacy entry by then, and deletes its new file, though git HEAD names it."""
    clone, pair = legacy_fa_pair(tmp_path / "clone")
    manifest_file = clone / "weights_manifest.json"
    mnist_only = tmp_path / "mnist_only"
    mnist_only.mkdir()
    (mnist_only / "MNIST").symlink_to(data_root / "MNIST")

    def retrain(root: Path, model_id: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DATA_ROOT": str(root)}
        env.pop("ZOO_MANIFEST", None)
        return subprocess.run([sys.executable, "-m", "training.retrain", model_id], cwd=clone, env=env,
                              capture_output=True, text=True)

    stopped = retrain(mnist_only, "fa_mlp.fashion_mnist")  # the fine-tune brings its start
    assert stopped.returncode == 2 and "fa_mlp.fashion_mnist" in stopped.stderr
    record = json.loads((clone / "results" / "legacy_retrains.json").read_text())
    assert set(record) == {"fa_mlp.mnist"} and record["fa_mlp.mnist"]["replaced"]
    new_start = read_manifest(manifest_file).entries["fa_mlp.mnist"]
    assert not is_legacy(new_start), "the start is published anew"
    git(clone, "add", "-A", "weights", "weights_manifest.json", "results")
    git(clone, "commit", "-qm", "what the stopped session left")
    listed = retrain(data_root, "--list").stdout.splitlines()
    assert "| undecided |" in next(line for line in listed if "`fa_mlp.mnist`" in line)

    finished = retrain(data_root, "fa_mlp.fashion_mnist")  # the fine-tune alone, as the only legacy id left
    assert finished.returncode == 0, finished.stderr
    assert "fa_mlp.fashion_mnist: 99.90 -> " in finished.stdout
    record = json.loads((clone / "results" / "legacy_retrains.json").read_text())
    assert not record["fa_mlp.fashion_mnist"]["replaced"]
    assert not record["fa_mlp.mnist"]["replaced"] and "fa_mlp.fashion_mnist" in record["fa_mlp.mnist"]["note"]
    assert all("old_entry" not in r for r in record.values()), "the group is decided"
    after = {e["id"]: e for e in json.loads(manifest_file.read_text())["weights"] if e["id"] in pair}
    assert after == pair, "both entries are the old ones again"
    assert all((clone / e["file"]).is_file() for e in pair.values())
    assert not (clone / str(new_start.file)).exists(), "the put-back start's new file is deleted"


def test_a_retrain_that_cannot_be_published_is_refused_before_it_is_recorded(tmp_path: Path, data_root: Path) -> None:
    """Trained from uncommitted code, a retrain within the tolerance cannot be published: the call fails, and nothing
    is recorded that would make every later call try to publish it again."""
    clone, _ = legacy_fa_pair(tmp_path / "clone")
    with (clone / "training" / "retrain.py").open("a") as code:
        code.write("\n# uncommitted\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DATA_ROOT": str(data_root)}
    env.pop("ZOO_MANIFEST", None)
    refused = subprocess.run([sys.executable, "-m", "training.retrain", "fa_mlp.mnist"], cwd=clone, env=env,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "uncommitted code" in refused.stderr
    assert json.loads((clone / "results" / "legacy_retrains.json").read_text()) == {}
