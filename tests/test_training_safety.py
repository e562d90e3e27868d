"""Training and fine-tuning cannot lose a published checkpoint or silently train on the wrong thing (issue 32): the
run folder, the manifest, `fit`'s inputs, `--set`, thread defaults, manifest records and saved state."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from training_runs import REPO, checkpoint_of, kill_after_first_epoch, run_entry, sha256, train_cli

import zoo
from training.provenance import REPO_ROOT, git_commit
from training.recipes import load_recipe, override_keys
from training.train import main, parse_args, resolved_config
from zoo.data import load_split
from zoo.engine.fit import FitConfig, fit
from zoo.errors import ManifestError
from zoo.registry import families, get_family
from zoo.weights.manifest import read_manifest

SMALL = ["--set", "arch.hidden=[16]", "--epochs", "1", "--limit", "300", "--test-limit", "200", "--no-progress"]


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                   capture_output=True)


# ------------------------------------------------------------------------------------------------ data loss


def test_pending_over_a_published_entry_is_refused_and_never_deletes_a_committed_file(tiny_zoo, capsys) -> None:
    folder = tiny_zoo.manifest.parent
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "published")
    before = tiny_zoo.manifest.read_text()
    assert main(["bp_mlp", "--dataset", "mnist", "--pending", "x", "--manifest", str(tiny_zoo.manifest)]) == 2
    assert "--replace-published" in capsys.readouterr().err
    assert tiny_zoo.manifest.read_text() == before and tiny_zoo.checkpoint.is_file()
    assert main(["bp_mlp", "--dataset", "mnist", "--pending", "x", "--manifest", str(tiny_zoo.manifest),
                 "--replace-published"]) == 0
    assert not read_manifest(tiny_zoo.manifest).entries[tiny_zoo.model_id].published
    assert tiny_zoo.checkpoint.is_file(), "the manifest at HEAD names this file: it must stay"


def test_a_folder_holding_a_finished_run_is_refused_and_resume_says_it_is_finished(tmp_path, data_root,
                                                                                    capsys) -> None:
    out = tmp_path / "run"
    assert main(["bp_mlp", "--dataset", "mnist", *SMALL, "--data-root", str(data_root), "--out", str(out)]) == 0
    first = sha256(out / "entry.json"), sha256(out / "run.json"), sha256(checkpoint_of(out))
    capsys.readouterr()
    assert main(["fa_mlp", "--dataset", "mnist", *SMALL, "--data-root", str(data_root), "--out", str(out)]) == 2
    assert "holds a finished run of bp_mlp.mnist" in capsys.readouterr().err
    assert main(["bp_mlp", "--dataset", "mnist", *SMALL, "--data-root", str(data_root), "--out", str(out),
                 "--resume"]) == 2
    assert "nothing left to train" in capsys.readouterr().err
    assert (sha256(out / "entry.json"), sha256(out / "run.json"), sha256(checkpoint_of(out))) == first


def test_resume_with_another_thread_count_is_refused(tmp_path, data_root) -> None:
    args = ["bp_mlp", "--dataset", "mnist", "--set", "arch.hidden=[16]", "--epochs", "3", "--limit", "3000",
            "--test-limit", "100", "--data-root", str(data_root), "--no-progress"]
    out = tmp_path / "killed"
    kill_after_first_epoch(train_cli(*args, "--out", str(out)), out)
    other = train_cli(*args, "--out", str(out), "--resume", "--threads", "2")
    log = other.communicate()[0]
    assert other.returncode == 2 and "started with threads 1" in log, log
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 1


def test_two_runs_into_one_folder_cannot_both_write(tmp_path, data_root, capsys) -> None:
    out = tmp_path / "shared"
    first = train_cli("bp_mlp", "--dataset", "mnist", "--epochs", "3", "--limit", "5000", "--test-limit", "100",
                      "--data-root", str(data_root), "--no-progress", "--out", str(out))
    try:
        deadline = time.monotonic() + 60
        while not (out / "run.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (out / "run.json").is_file(), "the first run did not start"
        assert main(["bp_mlp", "--dataset", "mnist", *SMALL, "--data-root", str(data_root), "--out", str(out)]) == 2
        assert "in use by another training process" in capsys.readouterr().err
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize("out", ["weights", "weights/private"])
def test_out_may_not_be_the_published_folder(out, data_root, capsys) -> None:
    before = sorted(p.name for p in (REPO / "weights").iterdir())
    assert main(["bp_mlp", "--dataset", "mnist", *SMALL, "--data-root", str(data_root), "--out",
                 str(REPO / out)]) == 2
    assert "published checkpoints' folder" in capsys.readouterr().err
    assert sorted(p.name for p in (REPO / "weights").iterdir()) == before


# ------------------------------------------------------------------------------------------------ silently wrong


def small_mlp(dataset: str = "mnist") -> torch.nn.Module:
    torch.manual_seed(0)
    family = get_family("bp_mlp")
    return family.build_model(family.arch_for(dataset, hidden=[16]), dataset=dataset)


def test_fit_takes_float_images_in_0_1_as_the_model_does_and_uint8(one_thread) -> None:
    images, labels = load_split("mnist", "test", limit=600)
    config = FitConfig(epochs=1, batch_size=100)
    as_uint8, as_float, as_numpy = small_mlp(), small_mlp(), small_mlp()
    fit(as_uint8, images, labels, config, progress=False, announce=False)
    fit(as_float, images.float() / 255, labels.to(torch.int32), config, progress=False, announce=False)
    fit(as_numpy, images.numpy(), labels.numpy(), config, progress=False, announce=False)
    for other in (as_float, as_numpy):
        for (name, a), b in zip(as_uint8.state_dict().items(), other.state_dict().values()):
            assert torch.equal(a, b), name


@pytest.mark.parametrize("change, message", [
    (lambda x, y: (x.float(), y), r"float images must lie in \[0, 1\].*0-255 values"),
    (lambda x, y: (x.float() / 255, y[:100]), r"labels must be one class index per image, shape \[1200\]"),
    (lambda x, y: (x.to(torch.int64), y), "images must be uint8 .* or float in"),
    (lambda x, y: (x[:, :, :20], y), r"images must have shape \[N, 1, 28, 28\]"),
    (lambda x, y: (x, y + 5), r"labels must lie in \[0, 9\]"),
    (lambda x, y: (x, y.float()), "labels must be integer class indices"),
    (lambda x, y: (torch.full(x.shape, float("nan")), y), "NaN or infinite"),
])
def test_fit_refuses_what_it_cannot_train_on_before_any_step(change, message) -> None:
    images, labels = load_split("mnist", "test", limit=1200)
    model = small_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        fit(model, *change(images, labels), FitConfig(epochs=1), progress=False, announce=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_fine_tuning_starts_from_the_checkpoints_own_recipe_and_says_what_it_trains(capsys) -> None:
    model = zoo.load("krotov_mlp.mnist")
    recorded = zoo.get_weights("krotov_mlp.mnist").entry.recipe["config"]["fit"]
    config = FitConfig.from_checkpoint(model, epochs=1, rule={"hebbian_epochs": 0})
    assert config.epochs == 1 and config.rule == {**recorded["rule"], "hebbian_epochs": 0}
    assert config.batch_size == recorded.get("batch_size", 100)
    images, labels = load_split("mnist", "test", limit=200)
    hebbian_before = model.hebbian.weight.clone()
    fit(model, images, labels, config, progress=False)
    said = capsys.readouterr().err
    assert "not the Hebbian layer" in said and "the head by gradients in epochs 1-1" in said
    assert torch.equal(model.hebbian.weight, hebbian_before)
    with pytest.raises(ValueError, match="unknown field"):
        FitConfig.from_checkpoint(model, epoch=1)
    with pytest.raises(ValueError, match="needs a pretrained zoo model"):
        FitConfig.from_checkpoint(small_mlp())


def test_readme_fine_tuning_example_runs_on_real_data(data_root, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ZOO_DATA_ROOT", str(data_root))
    readme = (REPO_ROOT / "README.md").read_text()
    code = re.search(r"<!-- fine-tune-example:start -->\n```python\n(.*?)```", readme, re.S)
    assert code is not None and len([line for line in code.group(1).splitlines() if line.strip()]) <= 10
    exec(compile(code.group(1), "README.md", "exec"), {})
    out = capsys.readouterr()
    assert "GradientTrainer trains all" in out.err
    accuracy = float(re.search(r"top-1 after fine-tuning: ([\d.]+)%", out.out).group(1))  # type: ignore[union-attr]
    assert accuracy > 60.0  # the MNIST checkpoint scores about 10-20 % on Fashion-MNIST before


@pytest.mark.parametrize("override, message", [
    ("lr=abc", "unknown key 'lr'"), ("unknown=1", "unknown key 'unknown'"),
    ("fit.bogus=1", "unknown key 'fit.bogus'"), ("fit.batch_size=abc", "fit.batch_size takes an integer"),
    ("arch.hidden=abc", "arch.hidden takes a JSON list of integers"), ("fit.rule.lr=abc", "fit.rule.lr takes a number"),
    ("fit.augment=3", "fit.augment takes a string"), ('fit.rule={"lr": "x"}', "fit.rule.lr takes a number"),
    ('fit.rule={"bogus": 1}', "unknown key 'fit.rule.bogus'"),
])
def test_every_override_is_checked_against_the_family(override, message, tmp_path, capsys) -> None:
    assert main(["bp_mlp", "--dataset", "mnist", "--set", override, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", sorted(n for n, f in families().items() if "lr" in f.trainer.options))
def test_the_helps_own_example_works_for_every_family_with_a_rate(name: str) -> None:
    dataset = get_family(name).datasets[0]
    config = resolved_config(parse_args([name, "--dataset", dataset, "--set", "fit.rule.lr=0.01"]))
    assert config["fit"]["rule"]["lr"] == 0.01
    section = resolved_config(parse_args([name, "--dataset", dataset, "--set", 'fit.rule={"lr": 0.02}']))
    assert section["fit"]["rule"]["lr"] == 0.02
    assert override_keys(name, dataset, load_recipe(name, dataset))["fit.rule.lr"] is not None


def test_the_default_thread_count_gives_the_same_bytes(tmp_path, data_root) -> None:
    digests = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        assert main(["bp_mlp", "--dataset", "mnist", "--epochs", "1", "--limit", "2000", "--test-limit", "100",
                     "--data-root", str(data_root), "--out", str(out), "--no-progress"]) == 0
        assert run_entry(out)["recipe"]["threads"] == 1
        digests.append(sha256(checkpoint_of(out)))
    assert digests[0] == digests[1]


# ------------------------------------------------------------------------------------------------ records


@pytest.mark.parametrize("field, value", [("learning_rule", "feedback_alignment"),
                                          ("arch", {"mean": [0.5]}), ("arch", {"bogus": 1})])
def test_a_manifest_entry_that_disagrees_with_its_family_does_not_load(tiny_zoo, field, value) -> None:
    raw = json.loads(tiny_zoo.manifest.read_text())
    entry = next(e for e in raw["weights"] if e["id"] == tiny_zoo.model_id)
    entry[field] = {**entry[field], **value} if isinstance(value, dict) else value
    tiny_zoo.manifest.write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="disagrees with its family bp_mlp"):
        zoo.load(tiny_zoo.model_id)


@pytest.mark.parametrize("name", sorted(families()))
def test_non_finite_images_are_refused_by_every_model(name: str) -> None:
    family = get_family(name)
    dataset = family.datasets[0]
    model = family.build_model(family.arch_for(dataset), dataset=dataset).eval()
    x = torch.rand(2, *family.arch_for(dataset)["in_shape"])
    for bad in (float("nan"), float("inf")):
        x[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            model(x)


def test_an_untracked_module_makes_the_recorded_commit_dirty() -> None:
    probe = REPO_ROOT / "zoo" / "_untracked_probe.py"
    before = git_commit()
    try:
        probe.write_text("X = 1\n")
        during = git_commit()
    finally:
        probe.unlink()
    assert "-dirty+" in during and during != before


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "state.json").write_text("{not json"), "cannot read the saved training state"),
    (lambda out: (out / "state.json").write_text(json.dumps({"format": 1})), "not a training state (missing"),
    (lambda out: (out / "run.json").unlink(), "no run.json"),
])
def test_damaged_saved_state_gets_one_line_naming_the_file(damage, message, tmp_path, data_root, capsys) -> None:
    args = ["bp_mlp", "--dataset", "mnist", "--set", "arch.hidden=[16]", "--epochs", "3", "--limit", "3000",
            "--test-limit", "100", "--data-root", str(data_root), "--no-progress"]
    out = tmp_path / "damaged"
    kill_after_first_epoch(train_cli(*args, "--out", str(out)), out)
    damage(out)
    assert main([*args, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err and str(out) in err



def test_publishing_reads_the_recorded_command_without_importing_the_training_script_again() -> None:
    """A recipe run publishes itself with the code it trained with: checking its recorded command must not import
    ``training.train`` anew (a run started as ``python -m training.train`` would then use the file as it is now)."""
    probe = textwrap.dedent('''
        import dataclasses, sys
        import zoo
        from training.publish import PublishError, check_run
        entry = zoo.get_weights("bp_mlp.mnist").entry
        entry = dataclasses.replace(entry, recipe={**entry.recipe, "command": entry.recipe["command"] + " --limit 5"})
        try:
            check_run(".", entry, ".")
        except PublishError as exc:
            print("refused:", "departs from its recipe" in str(exc))
        print("training.train imported:", "training.train" in sys.modules)
    ''')
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines() == ["refused: True", "training.train imported: False"], result.stderr
