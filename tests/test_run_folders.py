"""A training run's folder stands wherever a manifest id does: loading, evaluation, curves, robustness pictures,
attributions, representations and the attack measurement, beside the published checkpoints."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from training_runs import checkpoint_of

import zoo
from training import robustness
from training.train import main as train
from zoo.api import get_entry
from zoo.cli import main as cli
from zoo.errors import RunFolderError, UnknownModelError
from zoo.registry import get_family
from zoo.weights.checkpoint import load_into
from zoo.weights.run_folder import read_run_folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short run of a recipe departing from the published one, in a folder of its own."""
    from datasets import root_with

    out = tmp_path_factory.mktemp("runs") / "my_run"
    assert train(["bp_mlp", "--dataset", "mnist", "--epochs", "2", "--limit", "1000", "--test-limit", "500",
                  "--set", "arch.hidden=[64]", "--data-root", str(root_with("mnist")), "--no-progress",
                  "--out", str(out)]) == 0
    return out


def test_load_and_get_entry_take_a_run_folder(run: Path) -> None:
    entry = get_entry(str(run))
    assert entry.id == "bp_mlp.mnist" and entry.location == checkpoint_of(run).resolve()
    assert entry.arch["hidden"] == [64]
    model = zoo.load(run)
    family = get_family("bp_mlp")
    expected = load_into(family.build_model(entry.arch), checkpoint_of(run)).eval()
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), expected(x))


def test_a_run_folder_with_a_changed_checkpoint_is_refused(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    checkpoint = checkpoint_of(copy)
    checkpoint.write_bytes(checkpoint.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(RunFolderError, match="do not match entry.json"):
        zoo.load(copy)
    (copy / "entry.json").unlink()
    with pytest.raises(UnknownModelError):  # without entry.json it is no run folder, nor an id
        zoo.load(copy)


def test_cli_eval_curves_and_robustness_take_a_run_folder_beside_ids(run: Path, tmp_path: Path, data_root: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["eval", str(run), "--data-root", str(data_root), "--limit", "500"]) == 0
    out = capsys.readouterr().out
    assert f"{read_run_folder(run).metrics['top1']:.2f}" in out
    assert cli(["curves", str(run), "frsf_mlp.mnist", "--out", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert cli(["robustness", str(run), "bp_mlp.mnist", "--out", str(tmp_path / "rob")]) == 0
    assert (tmp_path / "rob" / "noise.png").is_file()


def test_a_run_stands_beside_the_published_checkpoint_sharing_its_id(run: Path, tmp_path: Path) -> None:
    """The run's entry has the id ``bp_mlp.mnist``, like the published checkpoint: every table and picture keeps
    both, the run named by its folder."""
    pytest.importorskip("matplotlib")
    from zoo.evaluation.curves import curves_figure
    from zoo.evaluation.robustness_plots import noise_plot

    mine, published = get_entry(str(run)), get_entry("bp_mlp.mnist")
    assert mine.id == published.id and (mine.name, published.name) == (str(run.resolve()), "bp_mlp.mnist")
    assert cli(["robustness", str(run), "bp_mlp.mnist", "--out", str(tmp_path / "rob")]) == 0
    record = json.loads((tmp_path / "rob" / "robustness.json").read_text())["checkpoints"]
    assert list(record) == [mine.name, "bp_mlp.mnist"]
    assert record[mine.name]["noise"][0] == [0.0, mine.metrics["top1"]]
    assert record["bp_mlp.mnist"]["noise"][0] == [0.0, published.metrics["top1"]]
    assert [line.get_label() for line in noise_plot([mine, published]).axes[0].lines] == [mine.name, "bp_mlp"]
    accuracy = curves_figure([mine, published]).axes[0]
    assert [line.get_label() for line in accuracy.lines] == [mine.name, "bp_mlp.mnist"]
    assert list(accuracy.lines[0].get_ydata()) == [r["test_top1"] for r in mine.recipe["curve"]]


def test_training_robustness_writes_into_the_run_folders_entry(run: Path, tmp_path: Path, data_root: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = json.loads((copy / "entry.json").read_text())
    assert robustness.main([str(copy), "--images", "40", "--data-root", str(data_root)]) == 0
    after = read_run_folder(copy)
    block = after.metrics["robustness"]
    assert block["n_eval"] == 40 and block["transfer_source"] == "bp_mlp.mnist"
    assert {k: v for k, v in after.metrics.items() if k != "robustness"} == before["metrics"]
    assert not list(copy.glob("*.tmp")) and not list(copy.glob(".*.tmp"))


def test_a_recipe_file_anywhere_trains_into_a_run_folder(tmp_path: Path, data_root: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "elsewhere" / "my_recipe.json"
    recipe.parent.mkdir()
    recipe.write_text(json.dumps({"entrypoint": "bp_mlp", "selected_on": "validation",
                                  "defaults": {"arch": {"hidden": [32]}, "fit": {"epochs": 1, "batch_size": 50}},
                                  "datasets": {"mnist": {"fit": {"rule": {"lr": 0.003}}}}}))
    common = ["bp_mlp", "--dataset", "mnist", "--recipe", str(recipe), "--limit", "500", "--test-limit", "200",
              "--data-root", str(data_root), "--no-progress"]
    assert train(common) == 2  # a departure from the zoo's recipe never replaces a published checkpoint
    assert f"departs from its recipe (--recipe {recipe}" in capsys.readouterr().err
    assert train([*common, "--out", str(tmp_path / "run")]) == 0
    entry = read_run_folder(tmp_path / "run")
    assert entry.arch["hidden"] == [32] and entry.recipe["config"]["fit"]["rule"]["lr"] == 0.003
    assert entry.recipe["config"]["fit"]["batch_size"] == 50 and f"--recipe {recipe}" in entry.recipe["departures"]
    assert f"--recipe {recipe}" in entry.recipe["command"]  # the recorded command trains the same run again
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"entrypoint": "fa_mlp", "selected_on": "none", "datasets": {"mnist": {}}}))
    assert train([*common[:4], str(other), *common[5:], "--out", str(tmp_path / "x")]) == 2
    assert f"recipe {other} is for 'fa_mlp', not 'bp_mlp'" in capsys.readouterr().err


def test_compare_and_explain_take_a_run_folder_beside_an_id(run: Path, tmp_path: Path, data_root: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rsatoolbox")
    pytest.importorskip("captum")
    from safetensors.torch import load_file

    ids = [str(run.resolve()), "bp_mlp.mnist"]
    assert cli(["compare", *ids, "--out", str(tmp_path / "compare"), "--images", "20",
                "--data-root", str(data_root)]) == 0
    labels = [tuple(label) for label in json.loads((tmp_path / "compare" / "cka.json").read_text())["labels"]]
    # the run's one-hidden-layer net and the published two-layer net each get their own untrained baseline
    assert {(str(run), "hidden.0"), ("bp_mlp.mnist", "hidden.1")} <= set(labels)
    assert ("bp_mlp.untrained", "hidden.0") in labels and ("bp_mlp.untrained[bp_mlp.mnist]", "hidden.1") in labels
    assert ("bp_mlp.untrained", "hidden.1") not in labels
    monkeypatch.chdir(run.parent)  # the same folder, written relative to the working one and twice: one model
    assert cli(["explain", run.name, "bp_mlp.mnist", f"./{run.name}", "--out", str(tmp_path / "explain"),
                "--images", "2", "--data-root", str(data_root)]) == 0
    assert json.loads((tmp_path / "explain" / "attributions.json").read_text())["ids"] == ids
    maps = load_file(tmp_path / "explain" / "attributions.safetensors")
    assert set(maps) == set(ids) and all(m.shape == (2, 1, 28, 28) for m in maps.values())


def test_an_arch_record_without_a_default_option_is_the_same_architecture(run: Path, tmp_path: Path) -> None:
    """A record written before an option existed (no ``activation``) and one naming its default share a baseline."""
    from zoo.evaluation.representations import untrained_baselines

    legacy = tmp_path / "legacy"
    shutil.copytree(run, legacy)
    record = json.loads((legacy / "entry.json").read_text())
    assert record["arch"].pop("activation") == get_family("bp_mlp").default_arch["activation"]
    (legacy / "entry.json").write_text(json.dumps(record))
    assert "activation" not in get_entry(str(legacy)).arch
    assert list(untrained_baselines([str(run), str(legacy)])) == ["bp_mlp.untrained"]
