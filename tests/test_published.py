"""The shipped checkpoints themselves: accuracy through torch.hub, and rule state kept by fine-tuning."""
from __future__ import annotations

import shlex

import pytest
import torch
from safetensors.torch import load_file

import zoo
from training.recipes import effective_config
from training.train import parse_args, resolved_config
from zoo.data import load_split
from zoo.evaluation.attacks import stale_transfer_source
from zoo.evaluation.evaluate import top1
from zoo.weights.manifest import read_manifest
from zoo.weights.paths import REPO_ROOT

MANIFEST = read_manifest(REPO_ROOT / "weights_manifest.json")
PUBLISHED = sorted(e.id for e in MANIFEST.entries.values() if e.published)
FINE_TUNED = sorted(e.id for e in MANIFEST.entries.values() if e.published and e.recipe["config"].get("init"))


@pytest.mark.parametrize("model_id", PUBLISHED)
def test_hub_load_reproduces_manifest_accuracy(model_id: str, data_root) -> None:
    entry = MANIFEST.entries[model_id]
    model = torch.hub.load(str(REPO_ROOT), entry.entrypoint, weights=entry.dataset, source="local")
    images, labels = load_split(entry.dataset, "test", data_root)
    assert abs(top1(model, images, labels) - entry.metrics["top1"]) <= 0.05


@pytest.mark.parametrize("model_id", sorted(MANIFEST.entries))
def test_recorded_recipe_is_what_its_command_runs_today(model_id: str) -> None:
    """Every entry (published or pending) is reproducible: its command, run against today's recipes and the
    defaults declared in the code, trains exactly the configuration the manifest recorded. A recipe or a default
    edited without retraining fails here."""
    entry = MANIFEST.entries[model_id]
    words = shlex.split(entry.recipe["command"])
    assert words[:3] == ["python", "-m", "training.train"]
    today = effective_config(entry.entrypoint, entry.dataset, resolved_config(parse_args(words[3:])))
    assert today == effective_config(entry.entrypoint, entry.dataset, entry.recipe["config"])
    assert today["arch"] == {**today["arch"], **entry.arch}  # the checkpoint was built from that architecture


def test_some_checkpoint_is_fine_tuned_from_another() -> None:
    assert FINE_TUNED, "the zoo ships fine-tuned checkpoints (recipe init): none found"


@pytest.mark.parametrize("model_id", FINE_TUNED)
def test_fine_tuning_keeps_rule_state_and_improves(model_id: str, data_root) -> None:
    """Fixed feedback matrices (and any other non-trained rule state) are bit-identical to the checkpoint the
    run started from, and the fine-tuned model beats its starting point on the new dataset."""
    entry = MANIFEST.entries[model_id]
    start = MANIFEST.entries[entry.recipe["config"]["init"]]
    tuned_state = load_file(str(REPO_ROOT / entry.file))
    start_state = load_file(str(REPO_ROOT / start.file))
    trained = {name for name, _ in zoo.load(model_id).named_parameters()}
    fixed = sorted(set(tuned_state) - trained)
    for name in fixed:
        assert torch.equal(tuned_state[name], start_state[name]), f"{name} changed during fine-tuning"
    images, labels = load_split(entry.dataset, "test", data_root)
    assert entry.metrics["top1"] > top1(zoo.load(start.id), images, labels)


@pytest.mark.parametrize("model_id", sorted(e.id for e in MANIFEST.entries.values() if not e.published))
def test_pending_recipes_build_their_model(model_id: str) -> None:
    """A pending entry's architecture builds and runs, so its recipe is ready for whoever has the data."""
    entry = MANIFEST.entries[model_id]
    model = zoo.create_model(entry.entrypoint, weights=None, dataset=entry.dataset,
                             **{k: v for k, v in entry.arch.items()
                                if k not in ("in_shape", "num_classes", "mean", "std")})
    x = torch.rand(2, *entry.input["shape"])
    assert model.eval()(x).shape == (2, entry.arch["num_classes"])


def test_the_weights_folder_holds_exactly_the_published_files() -> None:
    """A replaced checkpoint's file is deleted with its entry: nothing in ``weights/`` that no entry names."""
    named = {str(e.file) for e in MANIFEST.entries.values() if e.file}
    present = {f"weights/{p.name}" for p in (REPO_ROOT / "weights").iterdir()}
    assert present == named


def test_every_attack_figure_was_crafted_on_the_zoos_transfer_source() -> None:
    """A retrain that replaces a backprop checkpoint leaves the transfer figures of its architecture's other models
    stale until ``python -m training.robustness`` measures them again."""
    stale = [stale_transfer_source(e, MANIFEST.entries) for e in MANIFEST.entries.values() if e.published]
    assert [reason for reason in stale if reason] == []
