"""The training script end to end on a slice of real data: train, record, fine-tune, verify."""
from __future__ import annotations

import pytest
import torch

import zoo
from training.train import main
from zoo.checkpoint import load_into
from zoo.data import load_split
from zoo.evaluate import top1
from zoo.fit import random_shift
from zoo.manifest import read_manifest
from zoo.registry import get_family
from zoo.verify import verify_entry


def test_one_epoch_smoke_run_then_fine_tune(tmp_path, monkeypatch, data_root) -> None:
    manifest = tmp_path / "weights_manifest.json"
    monkeypatch.setenv("ZOO_MANIFEST", str(manifest))
    assert main(["bp_mlp", "--dataset", "mnist", "--epochs", "1", "--limit", "2000", "--data-root", str(data_root),
                 "--manifest", str(manifest), "--no-progress"]) == 0
    entry = read_manifest(manifest).entries["bp_mlp.mnist"]
    assert entry.published and (tmp_path / entry.file).is_file()
    assert entry.metrics["n_eval"] == 10000 and entry.metrics["top1"] > 60.0  # chance is 10%
    assert entry.recipe["command"] == "python -m training.train bp_mlp --dataset mnist --epochs 1 --limit 2000"
    assert set(entry.metrics["top1_fgsm"]) == {"0.05", "0.1"}
    assert all(check.ok for check in verify_entry(entry, data_root)), "verify must agree with what training wrote"

    fashion_x, fashion_y = load_split("fashion_mnist", "test", data_root, limit=2000)
    start = top1(zoo.load("bp_mlp.mnist"), fashion_x, fashion_y)
    assert main(["bp_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--limit", "2000", "--init",
                 "bp_mlp.mnist", "--data-root", str(data_root), "--manifest", str(manifest), "--no-progress"]) == 0
    tuned = read_manifest(manifest).entries["bp_mlp.fashion_mnist"]
    assert tuned.recipe["config"]["init"] == "bp_mlp.mnist"
    assert top1(zoo.load("bp_mlp.fashion_mnist"), fashion_x, fashion_y) > start + 10


def test_republishing_replaces_the_old_file(tiny_zoo, _tiny_model) -> None:
    from training.train import publish
    from zoo.registry import get_family

    model, arch, _ = _tiny_model
    retrained = get_family("bp_mlp").build_model(arch)
    retrained.load_state_dict({k: v + 0.01 for k, v in model.state_dict().items()})
    fields = read_manifest(tiny_zoo.manifest).entries[tiny_zoo.model_id].to_dict()
    new = publish(tiny_zoo.manifest, fields, retrained, get_family("bp_mlp"), arch)
    assert new.sha256 != tiny_zoo.sha256
    files = sorted(p.name for p in (tiny_zoo.root / "weights").iterdir())
    assert files == [new.filename], "the replaced checkpoint must be deleted, the new one kept"


def test_verify_catches_a_wrong_accuracy(tiny_zoo, tmp_path) -> None:
    import json

    raw = json.loads(tiny_zoo.manifest.read_text())
    raw["weights"][0]["metrics"]["top1"] = round(raw["weights"][0]["metrics"]["top1"] + 1.0, 4)
    tiny_zoo.manifest.write_text(json.dumps(raw))
    from zoo.manifest import read_manifest as read

    checks = verify_entry(read(tiny_zoo.manifest).entries[tiny_zoo.model_id])
    assert [c.name for c in checks if not c.ok] == ["top1"]


def test_random_shift_moves_whole_images() -> None:
    x = torch.zeros(2, 1, 6, 6)
    x[:, 0, 2, 3] = 1.0
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    assert torch.equal(shifted.sum((1, 2, 3)), torch.ones(2))



def test_krotov_layer_continues_unsupervised_from_a_published_checkpoint(tmp_path, data_root) -> None:
    """``--init krotov_fc.mnist`` with fewer epochs than the recipe's Hebbian phase: the published Hebbian weights
    are the starting point, the local rule moves them, they stay at its fixed point (p-norm 1) and the published
    head still reads the continued features."""
    manifest = tmp_path / "weights_manifest.json"
    published = zoo.load("krotov_fc.mnist")
    with pytest.warns(UserWarning, match="head is not trained"):
        assert main(["krotov_fc", "--dataset", "mnist", "--epochs", "1", "--limit", "1000", "--init",
                     "krotov_fc.mnist", "--data-root", str(data_root), "--manifest", str(manifest),
                     "--no-progress"]) == 0
    entry = read_manifest(manifest).entries["krotov_fc.mnist"]
    continued = load_into(get_family("krotov_fc").build_model(entry.arch), tmp_path / entry.file)
    before, after = published.hebbian.weight, continued.hebbian.weight
    assert not torch.equal(before, after), "the Hebbian layer must keep learning"
    assert torch.equal(published.head.weight, continued.head.weight), "an all-Hebbian run leaves the head alone"
    p_norms = after.abs().pow(3.0).sum(1)
    assert (p_norms.median() - 1.0).abs() < 0.05
    assert entry.metrics["top1"] > 95.0
