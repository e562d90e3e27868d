"""The attack comparison: white-box, rule-gradient and transfer attacks (foolbox), checked against hand
computations on tiny nets, and its manifest record."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from zoo.errors import ManifestError
from zoo.evaluation.attacks import (
    Tempered,
    adversarial_images,
    has_rule_gradient,
    logit_temperature,
    robust_top1,
    robustness_metrics,
    stale_transfer_source,
    zero_gradient_fraction,
)
from zoo.registry import get_family
from zoo.weights.manifest import Entry, Manifest, write_manifest

pytest.importorskip("foolbox", reason="the analysis extra (foolbox) is in requirements-dev")


def tiny(name: str, **arch: object) -> nn.Module:
    torch.manual_seed(3)
    family = get_family(name)
    return family.build_model(family.arch_for(in_shape=(1, 2, 2), num_classes=3, hidden=[5], **arch)).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    return torch.rand(6, 1, 2, 2, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2])


def test_rule_gradient_fgsm_follows_the_feedback_matrices() -> None:
    """FGSM on a tiny FA net through the rule's gradient: the error goes down through B, not W^T (by hand)."""
    model = tiny("fa_mlp")
    x, y = batch()
    eps = 0.1
    (rule_adv,) = adversarial_images(model, x, y, [eps], "fgsm", "rule_gradient")
    (true_adv,) = adversarial_images(model, x, y, [eps], "fgsm", "white_box")
    hidden, head = model.hidden[0], model.head
    with torch.no_grad():
        v = ((x - 0.5) / 0.5).flatten(1)  # ImageInput with mean 0.5, std 0.5
        a = v @ hidden.weight.T + hidden.bias
        z = torch.relu(a) @ head.weight.T + head.bias
        dz = torch.softmax(z, 1) - nn.functional.one_hot(y, 3)  # d(sum of cross-entropies)/dz
        by_rule = ((dz @ head.feedback) * (a > 0)) @ hidden.feedback / 0.5
        by_backprop = ((dz @ head.weight) * (a > 0)) @ hidden.weight / 0.5
    assert torch.allclose(rule_adv, (x + eps * by_rule.sign().view_as(x)).clamp(0, 1), atol=1e-6)
    assert torch.allclose(true_adv, (x + eps * by_backprop.sign().view_as(x)).clamp(0, 1), atol=1e-6)
    assert not torch.equal(rule_adv, true_adv)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_with_b_equal_to_w_rule_gradient_and_white_box_attacks_agree(attack: str) -> None:
    model = tiny("fa_mlp")
    for layer in (*model.hidden, model.head):
        layer.feedback.copy_(layer.weight.detach())
    x, y = batch()
    torch.manual_seed(5)
    rule = adversarial_images(model, x, y, [0.05, 0.2], attack, "rule_gradient")
    torch.manual_seed(5)
    white = adversarial_images(model, x, y, [0.05, 0.2], attack, "white_box")
    for a, b in zip(rule, white):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.equal(rule[1], x)


def test_drtp_rule_gradient_is_the_projected_target() -> None:
    model = tiny("drtp_mlp")
    x, y = batch()
    (adv,) = adversarial_images(model, x, y, [0.1], "fgsm", "rule_gradient")
    target = nn.functional.one_hot(y, 3).float()
    first = model.hidden[0]
    expected = (x + 0.1 * ((-target / len(y)) @ first.feedback / 0.5).sign().view_as(x)).clamp(0, 1)
    assert torch.allclose(adv, expected, atol=1e-6)  # whatever the image: the rule's signal ignores it


def test_rule_gradient_needs_rule_layers_and_modes_are_restored() -> None:
    bp = tiny("bp_mlp").train()
    assert not has_rule_gradient(bp) and has_rule_gradient(tiny("usf_mlp"))
    x, y = batch()
    with pytest.raises(ValueError, match="no rule layers"):
        adversarial_images(bp, x, y, [0.1], "fgsm", "rule_gradient")
    assert all(m.training for m in bp.modules())
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        adversarial_images(bp, x, y, [0.1], "cw", "white_box")


def test_transfer_uses_the_source_and_robustness_block_is_valid() -> None:
    torch.manual_seed(6)
    family = get_family("fa_mlp")
    model = family.build_model(family.arch_for("mnist", hidden=[16]))
    source = get_family("bp_mlp").build_model(get_family("bp_mlp").arch_for("mnist", hidden=[16]))
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    block = robustness_metrics(model, images, labels, "mnist", source=source, source_id="bp_mlp.mnist",
                               source_sha256="5" * 64, n_images=30)
    assert block["transfer_source"] == "bp_mlp.mnist" and block["transfer_source_sha256"] == "5" * 64
    with pytest.raises(ValueError, match="needs its id and checkpoint SHA-256"):
        robustness_metrics(model, images, labels, "mnist", source=source, source_id="bp_mlp.mnist", n_images=30)
    assert block["n_eval"] == 30 and set(block["top1_pgd"]) == {"white_box", "rule_gradient", "transfer"}
    assert set(block["top1_fgsm"]["transfer"]) == {"0.05", "0.1", "0.2", "0.3"}
    assert block["top1_pgd"]["white_box"]["0.3"] <= block["top1_clean"]
    direct = robust_top1(model, images[:30], labels[:30], ("0.3",), attack="pgd", attack_model="transfer",
                         source=source)
    assert direct == {"0.3": block["top1_pgd"]["transfer"]["0.3"]}  # seeded: the same figures again

    raw = manifest_entry({"robustness": block})
    assert Entry.from_dict(raw).metrics["robustness"] == block
    broken = {**block, "top1_pgd": {"rule_gradient": block["top1_pgd"]["rule_gradient"]}}
    with pytest.raises(ManifestError, match="white_box always"):
        Entry.from_dict(manifest_entry({"robustness": broken}))
    with pytest.raises(ManifestError, match="transfer_source"):
        Entry.from_dict(manifest_entry({"robustness": {**block, "transfer_source": None}}))
    for sha in ("5" * 63, None, "X" * 64):
        with pytest.raises(ManifestError, match="transfer_source_sha256"):
            Entry.from_dict(manifest_entry({"robustness": {**block, "transfer_source_sha256": sha}}))
    assert block["logit_temperature"] == {"white_box": 1.0, "rule_gradient": 1.0, "transfer": 1.0}
    unrecorded = {k: v for k, v in block.items() if k != "logit_temperature"}
    with pytest.raises(ManifestError, match="missing required field.*logit_temperature"):
        Entry.from_dict(manifest_entry({"robustness": unrecorded}))
    mismatched = {**block, "top1_fgsm": {"white_box": block["top1_fgsm"]["white_box"]}}
    with pytest.raises(ManifestError, match="the same attack models for every attack"):
        Entry.from_dict(manifest_entry({"robustness": mismatched}))
    for wrong in ({"white_box": 1.0}, {**block["logit_temperature"], "white_box": 3.0}):
        with pytest.raises(ManifestError, match="logit_temperature"):
            Entry.from_dict(manifest_entry({"robustness": {**block, "logit_temperature": wrong}}))


def manifest_entry(extra_metrics: dict[str, object], model_id: str = "fa_mlp.mnist") -> dict[str, object]:
    sha = "0" * 64
    family, dataset = model_id.split(".")
    return {"id": model_id, "entrypoint": family, "dataset": dataset,
            "learning_rule": get_family(family).learning_rule, "status": "published",
            "arch": get_family(family).arch_for(dataset),
            "input": {"shape": [1, 28, 28], "range": [0.0, 1.0], "dtype": "float32"},
            "recipe": {"command": f"python -m training.train {family} --dataset {dataset}", "config": {}, "seed": 0,
                       "epochs": 1, "wall_time_s": 1.0, "hardware": "test", "torch_version": "x", "git_commit": "x"},
            "hf": {"repo_id": "o/r", "filename": "model.safetensors", "revision": "main"}, "license": "MIT",
            "file": f"weights/{model_id}-{sha[:8]}.safetensors", "sha256": sha, "size_bytes": 1, "num_params": 1,
            "metrics": {"top1": 90.0, "n_eval": 10, "top1_noise": {"0.1": 1.0, "0.2": 1.0, "0.3": 1.0},
                        **extra_metrics},
            "url": "https://example.org/x"}


def attack_block(models: dict[str, dict[str, float]], source: str | None = "bp_mlp.mnist",
                 source_sha256: str | None = "0" * 64) -> dict[str, object]:
    """A valid ``metrics.robustness`` with the same curves for every attack and attack model."""
    return {"n_eval": 10, "top1_clean": 99.0, "pgd": {"steps": 20}, "transfer_source": source,
            "transfer_source_sha256": source_sha256, "logit_temperature": dict.fromkeys(models, 1.0),
            "top1_fgsm": models, "top1_pgd": models}


def test_a_replaced_transfer_source_makes_the_attack_figures_stale(tmp_path) -> None:
    """Figures crafted on a checkpoint the zoo no longer has are found, reported and measured again."""
    from training.robustness import to_measure

    curve = {"0.05": 90.0, "0.1": 50.0, "0.2": 10.0, "0.3": 1.0}
    source = Entry.from_dict(manifest_entry({"robustness": attack_block({"white_box": curve}, None, None)},
                                            "bp_mlp.mnist"))  # its checkpoint's sha256 is "0" * 64
    crafted_on_it = Entry.from_dict(manifest_entry({"robustness": attack_block({"white_box": curve,
                                                                                "transfer": curve})}))
    entries = {e.id: e for e in (source, crafted_on_it)}
    assert stale_transfer_source(crafted_on_it, entries) is None and stale_transfer_source(source, entries) is None
    replaced = dataclasses.replace(source, sha256="1" * 64, file="weights/bp_mlp.mnist-11111111.safetensors")
    reason = stale_transfer_source(crafted_on_it, {**entries, source.id: replaced})
    assert reason == ("fa_mlp.mnist: its transfer attack was crafted on bp_mlp.mnist (sha256 000000000000), but "
                      "the zoo's transfer source is now bp_mlp.mnist (sha256 111111111111)")
    assert "now no model" in str(stale_transfer_source(crafted_on_it, {crafted_on_it.id: crafted_on_it}))
    manifest_file = tmp_path / "weights_manifest.json"
    write_manifest(Manifest(entries), manifest_file)
    assert to_measure(manifest_file, [], force=False) == []
    write_manifest(Manifest({**entries, source.id: replaced}), manifest_file)
    assert to_measure(manifest_file, [], force=False) == ["fa_mlp.mnist"]


def test_robustness_curves_are_the_recorded_figures_drawn_and_written(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import json

    from zoo.evaluation.robustness_plots import attack_curves, write_robustness_curves

    curve = {"0.05": 90.0, "0.1": 50.0, "0.2": 10.0, "0.3": 1.0}
    models = {"white_box": curve, "rule_gradient": curve, "transfer": curve}
    block = attack_block(models)
    measured = Entry.from_dict(manifest_entry({"robustness": block, "top1_fgsm": {"0.05": 70.0, "0.1": 40.0}}))
    bare = Entry.from_dict(manifest_entry({}, "bp_mlp.mnist"))
    paths = write_robustness_curves([measured, bare], tmp_path / "out")
    assert sorted(p.name for p in paths) == ["fgsm.png", "noise.png", "pgd.png", "robustness.json"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths if p.suffix == ".png")
    record = json.loads((tmp_path / "out" / "robustness.json").read_text())["checkpoints"]
    rule_pgd = record["fa_mlp.mnist"]["attack_comparison"]["pgd"]["rule_gradient"]
    assert rule_pgd == [[0.0, 99.0], [0.05, 90.0], [0.1, 50.0], [0.2, 10.0], [0.3, 1.0]]
    assert record["fa_mlp.mnist"]["fgsm"] == [[0.0, 90.0], [0.05, 70.0], [0.1, 40.0]]  # whole test split
    assert record["bp_mlp.mnist"]["noise"] == [[0.0, 90.0], [0.1, 1.0], [0.2, 1.0], [0.3, 1.0]]
    assert "attack_comparison" not in record["bp_mlp.mnist"]
    with pytest.raises(ValueError, match="python -m training.robustness bp_mlp.mnist"):
        attack_curves(bare, "pgd")
    other = Entry.from_dict(manifest_entry({}, "fa_mlp.fashion_mnist"))
    with pytest.raises(ValueError, match="one dataset"):
        write_robustness_curves([measured, other], tmp_path / "mixed")


def test_pgd_at_zero_is_clean_accuracy_and_never_rises_with_epsilon() -> None:
    """On a trained checkpoint and real test images: ε = 0 leaves the images as they are, and a larger ε never
    helps the model."""
    import zoo
    from zoo.data import load_split

    images, labels = load_split("mnist", "test", limit=200)
    model = zoo.load("fa_mlp.mnist")
    clean = 100.0 * int((model(images.float() / 255).argmax(1) == labels).sum()) / len(labels)
    keys = ("0", "0.02", "0.05", "0.1", "0.2")
    for attack_model in ("white_box", "rule_gradient"):
        curve = list(robust_top1(model, images, labels, keys, attack="pgd", attack_model=attack_model).values())
        assert curve[0] == clean
        assert all(a >= b for a, b in zip(curve, curve[1:])), (attack_model, curve)


class Scaled(nn.Module):
    """A model whose logits are multiplied by ``scale`` (summed goodness, for instance, reaches such margins)."""

    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.scale


def test_an_attack_that_would_get_no_gradient_is_refused_not_weakened() -> None:
    """Saturated logits give exactly zero input gradients: the attack is refused with the reason, never run."""
    model = tiny("bp_mlp")
    x, y = batch()
    y = model(x).argmax(1)  # correctly classified: the saturated softmax then has no gradient at all
    images = (x * 255).to(torch.uint8)
    assert zero_gradient_fraction(model, x, y, "white_box") == 0.0
    robust_top1(model, images, y, ("0.1",), attack="fgsm", attack_model="white_box")
    saturated = Scaled(model, 1e6).eval()
    assert zero_gradient_fraction(saturated, x, y, "white_box") == 1.0
    with pytest.raises(ValueError, match="exactly zero for 100.0% of the images"):
        robust_top1(saturated, images, y, ("0.1",), attack="fgsm", attack_model="white_box")


def test_saturated_logits_are_attacked_at_the_smallest_temperature_that_restores_the_gradient() -> None:
    """A model whose softmax is one-hot in float32 is measured, not refused: its logits are divided by the smallest
    listed temperature that gives (nearly) every image a gradient, recorded in the block; predictions are unchanged
    and the attack bites. Beyond the largest temperature the model is still refused."""
    torch.manual_seed(6)
    family = get_family("bp_mlp")
    model = family.build_model(family.arch_for("mnist", hidden=[16])).eval()
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        labels = model(images.float() / 255).argmax(1)  # all correct: a saturated softmax has no gradient at all
    saturated = Scaled(model, 1e4).eval()
    x = images.float() / 255
    assert zero_gradient_fraction(saturated, x, labels, "white_box") > 0.5
    chosen = logit_temperature(saturated, images, labels, "white_box")
    assert chosen > 1.0
    assert zero_gradient_fraction(Tempered(saturated, chosen), x, labels, "white_box") <= 0.01
    assert zero_gradient_fraction(Tempered(saturated, chosen / 10), x, labels, "white_box") > 0.01

    block = robustness_metrics(saturated, images, labels, "mnist")
    assert block["logit_temperature"] == {"white_box": chosen}
    assert block["top1_clean"] == 100.0
    assert block["top1_pgd"]["white_box"]["0.3"] < 50.0  # the attack finds its way where it had no gradient
    assert Entry.from_dict(manifest_entry({"robustness": block})).metrics["robustness"] == block

    hopeless = Scaled(model, 1e12).eval()
    with pytest.raises(ValueError, match="even with the logits divided by 10000"):
        robustness_metrics(hopeless, images, labels, "mnist")
    with pytest.raises(ValueError, match="a logit temperature must be a positive number"):
        Tempered(model, 0.0)


class SaturatedOnBlack(nn.Module):
    """``model`` whose logits are multiplied by 1e9 for images whose first pixel is 0 (only those saturate)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.where(x.flatten(1)[:, :1] == 0, 1e9, 1.0).detach()
        return self.model(x) * scale


def test_the_attack_and_the_temperature_apply_one_rule_over_all_the_images() -> None:
    """One saturated image in 200 (0.5 %) is within the 1 % allowance over the whole set, though it is 10 % of its
    batch of 10: the temperature stays 1 and the attack runs at it, instead of being refused batch by batch."""
    torch.manual_seed(7)
    images = torch.randint(1, 256, (200, 1, 2, 2), dtype=torch.uint8)
    images[3, 0, 0, 0] = 0
    model = SaturatedOnBlack(tiny("bp_mlp")).eval()
    with torch.no_grad():
        labels = model(images.float() / 255).argmax(1)
    x = images.float() / 255
    assert zero_gradient_fraction(model, x[:10], labels[:10], "white_box") == pytest.approx(0.1)
    assert logit_temperature(model, images, labels, "white_box", batch_size=10) == 1.0
    top1 = robust_top1(model, images, labels, ("0.1",), attack="fgsm", attack_model="white_box", batch_size=10)
    assert 0.0 <= top1["0.1"] < 100.0
