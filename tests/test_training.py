"""The training script end to end on slices of real data: where runs write, determinism, resume, errors, logs."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import root_with
from torch import nn
from training_runs import REPO, checkpoint_of, kill_after_first_epoch, run_entry, sha256, train_cli

import zoo
from training.publish import PublishError, publish_run
from training.train import IN_PROGRESS_DIR, departures, hold_out, main, parse_args, run_folder
from zoo.data import load_split
from zoo.engine.distributed import Collective, ShardedDropout, dropout_sharded_over
from zoo.engine.fit import FitConfig, augment, random_shift
from zoo.engine.local_phase import HebbianPhaseTrainer
from zoo.evaluation.curves import save_curves
from zoo.evaluation.evaluate import top1
from zoo.registry import families, get_family
from zoo.weights.checkpoint import load_into
from zoo.weights.manifest import read_manifest
from zoo.weights.paths import manifest_path
from zoo.weights.verify import verify_entry


def test_smoke_run_writes_only_into_out_then_fine_tunes(tmp_path, data_root) -> None:
    published = manifest_path()
    before = sha256(published), sorted(p.name for p in (REPO / "weights").iterdir())
    out = tmp_path / "smoke"
    assert main(["bp_mlp", "--dataset", "mnist", "--epochs", "1", "--limit", "2000", "--data-root", str(data_root),
                 "--out", str(out), "--no-progress"]) == 0
    assert (sha256(published), sorted(p.name for p in (REPO / "weights").iterdir())) == before
    entry = read_manifest_entry(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(["entry.json", "run.json", entry.filename])
    assert entry.metrics["n_eval"] == 10000 and entry.metrics["top1"] > 60.0  # chance is 10%
    assert entry.recipe["command"] == "python -m training.train bp_mlp --dataset mnist --epochs 1 --limit 2000"
    assert entry.recipe["departures"] == ["--limit 2000", "--epochs 1"]
    assert [r["epoch"] for r in entry.recipe["curve"]] == [1]
    assert set(entry.recipe["curve"][0]) == {"epoch", "train_loss", "test_top1", "wall_s"}
    assert entry.recipe["threads"] == 1 and entry.recipe["device"] == "cpu"  # one thread unless asked
    assert set(entry.metrics["top1_fgsm"]) == {"0.05", "0.1"}
    png = save_curves([entry], tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    published = zoo.get_weights("bp_mlp.mnist").entry
    uncurved = dataclasses.replace(published, recipe={k: v for k, v in published.recipe.items() if k != "curve"})
    with pytest.raises(ValueError, match="bp_mlp.mnist has no learning curve"):  # as the legacy checkpoints
        save_curves([uncurved], tmp_path / "none.png")

    fashion_x, fashion_y = load_split("fashion_mnist", "test", data_root, limit=2000)
    start = top1(zoo.load("bp_mlp.mnist"), fashion_x, fashion_y)
    tuned_dir = tmp_path / "tuned"
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--limit", "2000", "--init",
                 "bp_mlp.mnist", "--data-root", str(data_root), "--out", str(tuned_dir), "--no-progress"]) == 0
    tuned = read_manifest_entry(tuned_dir)
    assert tuned.recipe["config"]["init"] == "bp_mlp.mnist"
    model = load_into(get_family("bp_mlp").build_model(tuned.arch), checkpoint_of(tuned_dir)).eval()
    assert top1(model, fashion_x, fashion_y) > start + 10


def read_manifest_entry(out: Path):
    from zoo.weights.manifest import Entry

    return Entry.from_dict(run_entry(out))


def test_a_departing_run_without_out_is_refused(tmp_path, data_root, capsys) -> None:
    before = sha256(manifest_path()), sorted(p.name for p in (REPO / "weights").iterdir())
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--limit", "200",
                 "--data-root", str(data_root)]) == 2
    message = capsys.readouterr().err
    assert "departs from its recipe (--limit 200, --epochs 1)" in message and "--out DIR" in message
    assert (sha256(manifest_path()), sorted(p.name for p in (REPO / "weights").iterdir())) == before


def one_family_per_rule() -> list[str]:
    chosen: dict[str, str] = {}
    for name, family in families().items():
        if "mnist" in family.datasets:  # the runs below train on MNIST
            chosen.setdefault(family.learning_rule, name)
    return sorted(chosen.values())


@pytest.mark.parametrize("entrypoint", one_family_per_rule())
def test_same_command_same_bytes(entrypoint, tmp_path, data_root) -> None:
    """Every rule's random draws (weights, feedback matrices, sign-symmetry magnitudes, Hebbian init, data order,
    augmentation, dropout) follow the seed: two runs give one checkpoint, a third with another seed differs."""
    args = [entrypoint, "--dataset", "mnist", "--epochs", "1", "--limit", "600", "--test-limit", "200",
            "--data-root", str(data_root), "--no-progress"]
    if issubclass(get_family(entrypoint).trainer, HebbianPhaseTrainer):  # one Hebbian epoch, one head epoch
        args += ["--epochs", "2", "--set", "fit.rule.hebbian_epochs=1"]
    digests = []
    for i, seed in enumerate(("0", "0", "1")):
        out = tmp_path / f"run{i}"
        assert main([*args, "--seed", seed, "--out", str(out)]) == 0
        digests.append(sha256(checkpoint_of(out)))
    assert digests[0] == digests[1], f"{entrypoint}: the same command gave two different checkpoints"
    assert digests[0] != digests[2], f"{entrypoint}: the seed does not reach the model"


@pytest.mark.parametrize("entrypoint, extra", [("brsf_lenet", []),
                                               ("semihebb_mlp", ["--set", "fit.rule.hebbian_epochs=2"])])
def test_killed_run_resumes_to_the_same_bytes(entrypoint, extra, tmp_path, data_root) -> None:
    args = [entrypoint, "--dataset", "mnist", "--epochs", "3", "--limit", "1000", "--test-limit", "500",
            "--data-root", str(data_root), "--no-progress", *extra]
    whole = train_cli(*args, "--out", str(tmp_path / "whole"))
    killed = train_cli(*args, "--out", str(tmp_path / "killed"))
    kill_after_first_epoch(killed, tmp_path / "killed")
    assert not (tmp_path / "killed" / "entry.json").exists()
    refused = train_cli(*args, "--out", str(tmp_path / "killed"))
    assert refused.wait() == 2 and "pass --resume" in refused.stdout.read()
    resumed = train_cli(*args, "--out", str(tmp_path / "killed"), "--resume")
    log = resumed.communicate()[0]
    assert resumed.returncode == 0, log
    assert "epoch 1/3" not in log and "epoch 2/3" in log, "the resumed run must start at epoch 2"
    assert whole.wait() == 0
    assert sha256(checkpoint_of(tmp_path / "killed")) == sha256(checkpoint_of(tmp_path / "whole"))
    assert [r["test_top1"] for r in run_entry(tmp_path / "killed")["recipe"]["curve"]] == \
        [r["test_top1"] for r in run_entry(tmp_path / "whole")["recipe"]["curve"]]
    assert not list((tmp_path / "killed").glob("state*")), "a finished run removes its resumable state"


def test_a_resumed_fine_tune_names_the_start_it_began_from(tmp_path, data_root) -> None:
    """The start is published anew while the fine-tune is stopped: the finished run still records, by its sha256, the
    checkpoint its weights came from (what ``training.reproduce`` rebuilds)."""
    raw = json.loads(manifest_path().read_text())
    (tmp_path / "weights").mkdir()
    for published in (REPO / "weights").glob("*.safetensors"):
        (tmp_path / "weights" / published.name).symlink_to(published)
    manifest_copy = tmp_path / "weights_manifest.json"
    manifest_copy.write_text(json.dumps(raw))
    env = {"ZOO_MANIFEST": str(manifest_copy)}
    out = tmp_path / "run"
    args = ["fa_mlp", "--dataset", "fashion_mnist", "--epochs", "3", "--limit", "2000", "--test-limit", "200",
            "--data-root", str(data_root), "--no-progress", "--out", str(out)]
    entries = {e["id"]: e for e in raw["weights"]}
    began, other = entries["fa_mlp.mnist"]["sha256"], entries["fa_mlp.fashion_mnist"]
    kill_after_first_epoch(train_cli(*args, env_extra=env), out)
    republished = f"weights/fa_mlp.mnist-{other['sha256'][:8]}.safetensors"  # another checkpoint of the same net
    (tmp_path / republished).symlink_to(REPO / other["file"])
    entries["fa_mlp.mnist"].update(file=republished, sha256=other["sha256"], size_bytes=other["size_bytes"])
    manifest_copy.write_text(json.dumps(raw))
    resumed = train_cli(*args, "--resume", env_extra=env)
    log = resumed.communicate()[0]
    assert resumed.returncode == 0, log
    assert run_entry(out)["recipe"]["init_sha256"] == began != other["sha256"]
    unsaved = tmp_path / "unsaved"  # stopped before its first epoch ended: it starts again, from the start as now
    unsaved.mkdir()
    shutil.copy(out / "run.json", unsaved / "run.json")
    again = train_cli(*args[:-1], str(unsaved), "--resume", env_extra=env)
    log = again.communicate()[0]
    assert again.returncode == 0, log
    assert run_entry(unsaved)["recipe"]["init_sha256"] == other["sha256"]


def git_in(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                          capture_output=True, text=True).stdout


def test_a_recipe_run_keeps_its_state_where_git_tracks_it() -> None:
    args = parse_args(["bp_resnet20", "--dataset", "cifar10"])
    folder = run_folder(args, "bp_resnet20.cifar10", departures(args))
    assert folder == IN_PROGRESS_DIR / "bp_resnet20.cifar10" and REPO in folder.parents
    for name in ("state.json", "state-epoch0007.safetensors", "run.json", "train.log"):
        ignored = subprocess.run(["git", "check-ignore", "-q", str(folder / name)], cwd=REPO)
        assert ignored.returncode == 1, f"{name} of an in-progress run would not be committed"
    for name in ("run.lock", ".state.json.k2j4x.tmp", ".state-epoch0008.safetensors.a8f0.tmp"):  # a write half done
        ignored = subprocess.run(["git", "check-ignore", "-q", str(folder / name)], cwd=REPO)
        assert ignored.returncode == 0, f"{name} of an in-progress run would be committed"


@pytest.mark.parametrize("entrypoint, dataset, extra", [
    ("brsf_lenet", "mnist", ["--limit", "1000"]),
    ("dfa_resnet20", "cifar10", ["--limit", "128", "--set", "fit.batch_size=64"]),  # batch norm, channels-last, Adam
])
def test_a_run_resumes_on_a_fresh_clone_of_its_committed_state(entrypoint, dataset, extra, tmp_path) -> None:
    """The state a run leaves in the checkout, committed and cloned elsewhere (a fresh machine: nothing outside the
    clone survives), continues to the bytes of an uninterrupted run."""
    data_root = root_with(dataset)
    args = [entrypoint, "--dataset", dataset, "--epochs", "2", "--test-limit", "100", "--data-root", str(data_root),
            "--no-progress", *extra]
    relative = Path("training") / "in_progress" / f"{entrypoint}.{dataset}"
    origin = tmp_path / "origin"
    (origin / relative).mkdir(parents=True)
    shutil.copy(REPO / ".gitignore", origin / ".gitignore")
    whole = train_cli(*args, "--out", str(tmp_path / "whole"))
    kill_after_first_epoch(train_cli(*args, "--out", str(origin / relative)), origin / relative)
    git_in(origin, "init", "-q")
    git_in(origin, "add", "-A")
    git_in(origin, "commit", "-qm", "state after epoch 1")
    git_in(tmp_path, "clone", "-q", str(origin), "fresh")
    shutil.rmtree(origin)
    resumed = train_cli(*args, "--out", str(tmp_path / "fresh" / relative), "--resume")
    log = resumed.communicate()[0]
    assert resumed.returncode == 0, log
    assert "epoch 1/2" not in log and "epoch 2/2" in log
    assert whole.wait() == 0
    assert sha256(checkpoint_of(tmp_path / "fresh" / relative)) == sha256(checkpoint_of(tmp_path / "whole"))


@pytest.mark.parametrize("entrypoint, extra", [
    ("bp_mlp", []),  # the recipe's dropout 0.3
    ("fa_mlp", ["--set", "arch.dropout=0.2"]), ("dfa_mlp", []), ("dtp_mlp", []), ("krotov_mlp", []),
    ("bp_lenet", ["--set", "arch.dropout=0.2", "--limit", "600"]),
])
def test_two_processes_train_like_one(entrypoint, extra, tmp_path, data_root) -> None:
    """torchrun with 2 gloo processes and 1 process on the same global batches give the same weights, dropout
    included (its masks are drawn for the global batch)."""
    args = [entrypoint, "--dataset", "mnist", "--epochs", "1", "--limit", "2000", "--test-limit", "200",
            "--data-root", str(data_root), "--no-progress", "--device", "cpu", *extra]
    single = train_cli(*args, "--out", str(tmp_path / "one"))
    pair = train_cli(*args, "--out", str(tmp_path / "two"),
                     runner=(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             "--master_port", str(29500 + os.getpid() % 1000)))
    for process in (single, pair):
        log = process.communicate(timeout=300)[0]
        assert process.returncode == 0, log
    assert run_entry(tmp_path / "two")["recipe"]["processes"] == 2
    from safetensors.torch import load_file

    one, two = load_file(checkpoint_of(tmp_path / "one")), load_file(checkpoint_of(tmp_path / "two"))
    assert one.keys() == two.keys()
    for name in one:
        scale = one[name].norm().clamp_min(1e-12)
        assert float((one[name] - two[name]).norm() / scale) < 1e-4, name


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_draws_one_process_masks_in_each_shard_and_nn_dropouts_alone(p: float) -> None:
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    expected = nn.Dropout(p)(x)
    torch.manual_seed(3)
    assert torch.equal(ShardedDropout(p)(x), expected)  # one process: the bytes nn.Dropout gives
    shards = []
    for rank in range(2):
        torch.manual_seed(3)
        layer = ShardedDropout(p)
        with dropout_sharded_over(nn.Sequential(layer), Collective(rank=rank, world=2)):
            shards.append(layer(x[rank * 4:(rank + 1) * 4]))
        assert layer.collective.world == 1  # only for the length of the run
    assert torch.equal(torch.cat(shards), expected)


@pytest.mark.parametrize("argv, message", [
    (["--init", "bp_mlp.cifar10"], "takes inputs of shape [3, 32, 32], this run's dataset has [1, 28, 28]"),
    (["--init", "bp_mlp.mnst"], "Did you mean: bp_mlp.mnist"),
    (["--init", "fa_mlp.mnist"], "continues only from its own checkpoints"),
    (["--limit", "0"], "--limit must be a positive number of images, got 0"),
    (["--device", "tpu"], "unknown device 'tpu'; accepted: auto, cpu, cuda, cuda:N, mps"),
    (["--device", "cuda:7"], "is not available"),
    (["--set", "nosuch.key=1"], "unknown key 'nosuch.key'"),
    (["--test-limit", "-3"], "--test-limit must be a positive number of images, got -3"),
])
def test_bad_command_lines_get_one_clear_error(argv, message, tmp_path, data_root, capsys) -> None:
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--data-root", str(data_root),
                 "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_init_from_a_pending_checkpoint_is_refused(tiny_zoo, tmp_path, data_root, capsys) -> None:
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--pending", "Not trained yet.",
                 "--manifest", str(tiny_zoo.manifest)]) == 0
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--data-root", str(data_root),
                 "--out", str(tmp_path / "x"), "--init", "bp_mlp.fashion_mnist"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --init bp_mlp.fashion_mnist: that checkpoint is pending") and err.count("\n") == 1


def test_log_without_a_terminal_is_one_line_per_epoch(tmp_path, data_root) -> None:
    process = train_cli("bp_mlp", "--dataset", "mnist", "--epochs", "2", "--limit", "500", "--test-limit", "500",
                        "--data-root",
                        str(data_root), "--out", str(tmp_path / "log"))
    log = process.communicate()[0]
    assert process.returncode == 0, log
    assert "\r" not in log
    assert [line.split()[1] for line in log.splitlines() if " epoch " in line] == ["epoch", "epoch"]


def tiny_recipe(recipes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the recipes at a folder whose ``bp_mlp`` recipe takes a second: 1 epoch of a 16-unit MLP on the
    first images (so a run of it, as written, departs from nothing)."""
    import training.recipes

    recipes.mkdir()
    (recipes / "bp_mlp.json").write_text(json.dumps({"entrypoint": "bp_mlp", "selected_on": "test", "datasets": {
        "mnist": {"arch": {"hidden": [16]}, "fit": {"epochs": 1, "rule": {"lr": 0.003}}}}}))
    monkeypatch.setattr(training.recipes, "RECIPES_DIR", recipes)


def test_publish_keeps_the_manifest_mode_and_refuses_departures_and_dirty_code(tmp_path, tiny_zoo, data_root,
                                                                              monkeypatch) -> None:
    out = tmp_path / "departing"
    assert main(["bp_mlp", "--dataset", "mnist", "--epochs", "1", "--limit", "300", "--data-root", str(data_root),
                 "--out", str(out), "--no-progress"]) == 0  # the full test split: verify recomputes its top-1
    with pytest.raises(PublishError, match="departs from its recipe"):
        publish_run(out, tiny_zoo.manifest, data_root)
    raw = run_entry(out)
    del raw["recipe"]["departures"]  # a hand edit: the recorded command still says --limit 300
    (out / "entry.json").write_text(json.dumps(raw))
    with pytest.raises(PublishError, match=r"departs from its recipe \(--limit 300, --epochs 1\)"):
        publish_run(out, tiny_zoo.manifest, data_root)

    tiny_recipe(tmp_path / "recipes", monkeypatch)
    out = tmp_path / "recipe-run"
    assert main(["bp_mlp", "--dataset", "mnist", "--data-root", str(data_root), "--out", str(out),
                 "--no-progress"]) == 0
    raw = run_entry(out)
    assert "departures" not in raw["recipe"]
    raw["recipe"]["git_commit"] = "0" * 40 + "-dirty+abc"
    (out / "entry.json").write_text(json.dumps(raw))
    with pytest.raises(PublishError, match="uncommitted code"):
        publish_run(out, tiny_zoo.manifest, data_root)
    raw["recipe"]["git_commit"] = "0" * 40  # as if trained from a clean tree
    for edit, message in ((("metrics", "top1", 99.9), "measures"), (("metrics", "n_eval", 200), "measures"),
                          (("recipe", "config", {"arch": {}, "fit": {"epochs": 1}, "init": None}), "configuration")):
        edited = json.loads(json.dumps(raw))
        edited[edit[0]][edit[1]] = edit[2]
        (out / "entry.json").write_text(json.dumps(edited))
        with pytest.raises(PublishError, match=message):
            publish_run(out, tiny_zoo.manifest, data_root)
    (out / "entry.json").write_text(json.dumps(raw))
    os.chmod(tiny_zoo.manifest, 0o644)
    entry = publish_run(out, tiny_zoo.manifest, data_root)
    assert oct(tiny_zoo.manifest.stat().st_mode & 0o777) == "0o644"
    assert read_manifest(tiny_zoo.manifest).entries[entry.id].sha256 == entry.sha256
    assert all(check.ok for check in verify_entry(entry, data_root)), "verify must agree with what training wrote"


def test_random_shift_moves_whole_images() -> None:
    x = torch.zeros(2, 1, 6, 6)
    x[:, 0, 2, 3] = 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    assert torch.equal(shifted.sum((1, 2, 3)), torch.ones(2))


def test_crop_flip_mirrors_about_half_the_images() -> None:
    x = torch.zeros(1000, 1, 4, 4)
    x[:, 0, 1, 0] = 1.0  # one lit pixel in the left column
    out = augment(x, FitConfig(epochs=1, augment="crop_flip", max_shift=0), torch.Generator().manual_seed(0))
    mirrored = out[:, 0, 1, 3] == 1.0
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(1000))
    assert 400 < int(mirrored.sum()) < 600
    assert torch.equal(out[~mirrored], x[~mirrored])


def test_krotov_layer_continues_unsupervised_from_a_published_checkpoint(tmp_path, data_root) -> None:
    """``--init krotov_fc.mnist`` with fewer epochs than the recipe's Hebbian phase: the published Hebbian weights
    are the starting point, the local rule moves them, they stay at its fixed point (p-norm 1) and the published
    head still reads the continued features."""
    out = tmp_path / "continued"
    published = zoo.load("krotov_fc.mnist")
    with pytest.warns(UserWarning, match="head is not trained"):
        assert main(["krotov_fc", "--dataset", "mnist", "--epochs", "1", "--limit", "1000", "--test-limit", "2000",
                     "--init",
                     "krotov_fc.mnist", "--data-root", str(data_root), "--out", str(out), "--no-progress"]) == 0
    entry = read_manifest_entry(out)
    continued = load_into(get_family("krotov_fc").build_model(entry.arch), checkpoint_of(out))
    before, after = published.hebbian.weight, continued.hebbian.weight
    assert not torch.equal(before, after), "the Hebbian layer must keep learning"
    assert torch.equal(published.head.weight, continued.head.weight), "an all-Hebbian run leaves the head alone"
    p_norms = after.abs().pow(3.0).sum(1)
    assert (p_norms.median() - 1.0).abs() < 0.05
    assert entry.metrics["top1"] > 95.0 and entry.metrics["n_eval"] == 2000


def test_val_holds_out_the_same_images_in_every_run_and_records_their_top1(tmp_path, data_root) -> None:
    images, labels = load_split("mnist", "train", data_root)
    train_x, train_y, val_x, val_y = hold_out(images, labels, 1000)
    again = hold_out(images, labels, 1000)
    assert torch.equal(val_x, again[2]) and len(train_x) == len(images) - 1000 and len(val_x) == 1000
    seen = {bytes(x.numpy()) for x in train_x[:20000]}
    assert not any(bytes(x.numpy()) in seen for x in val_x[:200] if int((x > 0).sum()) > 80)
    out = tmp_path / "val"
    assert main(["bp_mlp", "--dataset", "mnist", "--set", "arch.hidden=[16]", "--epochs", "2", "--limit", "1000",
                 "--val", "500", "--test-limit", "100", "--data-root", str(data_root), "--out", str(out),
                 "--no-progress"]) == 0
    recipe = run_entry(out)["recipe"]
    assert all("val_top1" in r for r in recipe["curve"]) and recipe["validation"]["n"] == 500
    assert "--val 500" in recipe["departures"] and "--val 500" in recipe["command"]


def test_every_recipe_says_how_it_was_chosen(tmp_path, monkeypatch) -> None:
    import training.recipes

    for path in training.recipes.RECIPES_DIR.glob("*.json"):
        assert json.loads(path.read_text())["selected_on"] in training.recipes.SELECTED_ON, path.name
    tiny_recipe(tmp_path / "recipes", monkeypatch)
    raw = json.loads((tmp_path / "recipes" / "bp_mlp.json").read_text())
    del raw["selected_on"]
    (tmp_path / "recipes" / "bp_mlp.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="selected_on must be one of"):
        training.recipes.load_recipe("bp_mlp", "mnist")
