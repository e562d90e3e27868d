"""PEPITA (Dellaferrera & Kreiman 2022): the update against its formula computed sample by sample on tiny nets, the
shared dropout masks, the learning-rate schedule, the alignment with backprop, the fixed projection F as a checkpoint
buffer that fine-tuning through ``training.train --init`` keeps bit-identical, and errors for bad options."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from publishing import publish_test_model
from safetensors.torch import load_file
from torch.nn import functional as F

from training.train import main
from zoo.data import load_split
from zoo.engine.fit import FitConfig, fit
from zoo.engine.options import schedule_factor
from zoo.evaluation.evaluate import full_metrics
from zoo.registry import get_family
from zoo.rules.pepita import (
    PepitaNetwork,
    PepitaTrainer,
    dropout_masks,
    pepita_alignment,
    pepita_update,
)
from zoo.weights.checkpoint import load_into, save_checkpoint


def tiny_net(hidden: tuple[int, ...], seed: int = 0) -> PepitaNetwork:
    """4 inputs (a 2x2 image, identity normalisation), ``hidden`` units, 2 classes, with fixed random weights."""
    torch.manual_seed(seed)
    model = PepitaNetwork((1, 2, 2), 2, [0.0], [1.0], hidden=hidden)
    with torch.no_grad():
        for param in model.parameters():  # non-zero biases too, so the bias update is exercised
            param.copy_(torch.randn_like(param) * 0.8)
        model.projection.copy_(torch.randn_like(model.projection) * 0.3)
    return model


def formula(model: PepitaNetwork, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The paper's dW and db, one sample at a time with outer products, averaged over the batch."""
    weights = [layer.weight.detach() for layer in [*model.hidden, model.head]]
    biases = [layer.bias.detach() for layer in [*model.hidden, model.head]]
    names = [f"hidden.{i}" for i in range(len(model.hidden))] + ["head"]
    total = {f"{n}.{kind}": torch.zeros_like(p) for n, w, b in zip(names, weights, biases)
             for kind, p in (("weight", w), ("bias", b))}
    for sample, label in zip(x.flatten(1), y):
        h = [sample]
        for w, b in zip(weights[:-1], biases[:-1]):
            h.append(torch.relu(w @ h[-1] + b))
        e = torch.softmax(weights[-1] @ h[-1] + biases[-1], 0) - F.one_hot(label, 2).float()
        hm = [sample + model.projection @ e]  # x + F e (mean 0, std 1: the normalised input is the image)
        for w, b in zip(weights[:-1], biases[:-1]):
            hm.append(torch.relu(w @ hm[-1] + b))
        deltas = [a - b for a, b in zip(h[1:], hm[1:])] + [e]
        for index, (name, delta) in enumerate(zip(names, deltas)):
            total[f"{name}.weight"] += torch.outer(delta, hm[index]) / len(y)
            total[f"{name}.bias"] += delta / len(y)
    return total


@pytest.mark.parametrize("hidden", [(3,), (3, 5)])
def test_the_update_equals_the_formula_on_a_tiny_net(hidden: tuple[int, ...]) -> None:
    model = tiny_net(hidden)
    x, y = torch.rand(5, 1, 2, 2, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 1, 0, 1])
    expected = formula(model, x, y)
    update, logits = pepita_update(model, x, y)
    assert set(update) == set(expected) == {n for n, _ in model.named_parameters()}
    for name in expected:
        torch.testing.assert_close(update[name], expected[name], rtol=1e-5, atol=1e-6)
    assert torch.equal(logits, model.eval()(x))  # the first pass is the plain forward pass

    # the trainer applies W <- W - lr * dW (plain SGD here), and changes nothing else
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = PepitaTrainer(model.train(), {"lr": 0.5, "momentum": 0.0, "schedule": "constant"}, 1, 1)
    loss = trainer.step(x, y)
    assert loss == pytest.approx(float(F.cross_entropy(logits, y)))
    for name, value in model.state_dict().items():
        expected_value = before[name] - 0.5 * expected[name] if name in expected else before[name]
        torch.testing.assert_close(value, expected_value, rtol=1e-5, atol=1e-6)


def test_the_modulation_is_added_to_the_image_before_the_normalisation() -> None:
    """``x + F e`` in pixel units, then the model's normalisation: the first layer reads ``h_0 + F e / std``."""
    torch.manual_seed(2)
    model = PepitaNetwork((1, 2, 2), 2, [0.3], [0.25], hidden=(3,))
    x, y = torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 0, 1])
    update, logits = pepita_update(model, x, y)
    e = torch.softmax(logits, 1) - F.one_hot(y, 2).float()
    h0_mod = (x.flatten(1) - 0.3) / 0.25 + e @ model.projection.t() / 0.25
    h1, h1_mod = torch.relu(model.hidden[0]((x.flatten(1) - 0.3) / 0.25)), torch.relu(model.hidden[0](h0_mod))
    torch.testing.assert_close(update["hidden.0.weight"], (h1 - h1_mod).detach().t() @ h0_mod / 4)


def test_one_dropout_mask_serves_both_passes() -> None:
    torch.manual_seed(3)
    model = PepitaNetwork((1, 4, 4), 10, [0.5], [0.5], hidden=(32,), dropout=0.5)
    x, y = torch.rand(2, 1, 4, 4), torch.arange(2)
    masks = dropout_masks(model, 2)
    assert masks is not None and masks[0].shape == (2, 32)
    assert set(masks[0].unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept units scaled by 1 / (1 - p)
    update, _ = pepita_update(model, x, y, masks)
    dropped = (masks[0] == 0).all(0)  # units dropped for both samples
    assert dropped.any()
    # a dropped unit is silent in both passes: no update of its input weights, no input to the head
    assert torch.all(update["hidden.0.weight"][dropped] == 0) and torch.all(update["head.weight"][:, dropped] == 0)
    assert dropout_masks(PepitaNetwork((1, 4, 4), 10, [0.5], [0.5], hidden=(32,)), 8) is None


def test_step_schedule_is_the_papers_decay() -> None:
    assert [schedule_factor("step", p) for p in (0.0, 0.59, 0.6, 0.89, 0.9, 1.0)] == \
        pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert schedule_factor("cosine", 0.5) == pytest.approx(0.5)
    model = tiny_net((3,))
    trainer = PepitaTrainer(model, {"lr": 0.2}, steps_per_epoch=10, epochs=100)  # the paper: epochs 60 and 90
    rates = {}
    for epoch in (59, 60, 89, 90):
        trainer.step_count = epoch * 10
        rates[epoch] = trainer.learning_rate()
    assert rates == pytest.approx({59: 0.2, 60: 0.02, 89: 0.02, 90: 0.002})


def test_alignment_follows_the_sign_of_the_effective_feedback() -> None:
    """To first order the hidden update is ``(f' * W_1 F e / std) h_0^T``, backprop's ``-(f' * W_2^T e) h_0^T``: with
    ``F = -c std W_1^+ W_2^T`` PEPITA descends the gradient, with the opposite sign it ascends it."""
    torch.manual_seed(4)
    model = PepitaNetwork((1, 4, 4), 10, [0.5], [0.5], hidden=(8,))
    x, y = torch.rand(32, 1, 4, 4), torch.randint(0, 10, (32,))
    projection = -1e-3 * 0.5 * torch.linalg.pinv(model.hidden[0].weight.detach()) @ model.head.weight.detach().t()
    model.projection.copy_(projection)
    angles = pepita_alignment(model, x, y)
    assert set(angles) == {"hidden.0.weight", "head.weight"}
    assert angles["hidden.0.weight"] < 5.0 and angles["head.weight"] < 1.0
    model.projection.copy_(-projection)
    assert pepita_alignment(model, x, y)["hidden.0.weight"] > 175.0
    model.projection.zero_()  # no modulation, no hidden update: orthogonal by convention
    assert pepita_alignment(model, x, y)["hidden.0.weight"] == 90.0
    assert get_family("pepita_mlp").alignment is pepita_alignment
    assert all(p.grad is None for p in model.parameters())


def test_the_projection_is_a_fixed_checkpoint_buffer(tmp_path: Path) -> None:
    family = get_family("pepita_mlp")
    arch = family.arch_for("mnist", hidden=[16])
    torch.manual_seed(5)
    model = family.build_model(arch)
    assert "projection" in model.state_dict() and "projection" not in dict(model.named_parameters())
    bound = 0.05 * math.sqrt(6 / 784)
    assert model.projection.shape == (784, 10) and 0.9 * bound < float(model.projection.abs().max()) <= bound
    path = save_checkpoint(model, tmp_path / "m.safetensors", entrypoint=family.name, arch=arch)
    assert torch.equal(load_file(str(path))["projection"], model.projection)
    torch.manual_seed(6)
    fresh = family.build_model(arch)
    assert not torch.equal(fresh.projection, model.projection)
    load_into(fresh, path)
    assert torch.equal(fresh.projection, model.projection)


def test_fine_tuning_with_init_keeps_the_projection_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 data_root: Path) -> None:
    """A PEPITA checkpoint published into a manifest of its own (the real code path), then fine-tuned on
    Fashion-MNIST by ``training.train --init``: F is the published one bit for bit, the weights moved."""
    family = get_family("pepita_mlp")
    arch = family.arch_for("mnist", hidden=[64])
    torch.manual_seed(7)
    model = family.build_model(arch)
    fit(model, *load_split("mnist", "train", data_root, limit=500), FitConfig(epochs=1, batch_size=50),
        progress=False)
    metrics = full_metrics(model.eval(), *load_split("mnist", "test", data_root, limit=200), "mnist")
    entry = publish_test_model(tmp_path, monkeypatch, "pepita_mlp", "mnist", arch, model, metrics, epochs=1)
    published = load_file(str(tmp_path / "zoo" / str(entry.file)))

    out = tmp_path / "tuned"
    assert main(["pepita_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--limit", "1000", "--test-limit",
                 "200", "--init", "pepita_mlp.mnist", "--set", "arch.hidden=[64]", "--data-root", str(data_root),
                 "--out", str(out), "--no-progress"]) == 0
    tuned = load_file(str(out / Path(json.loads((out / "entry.json").read_text())["file"]).name))
    assert torch.equal(tuned["projection"], published["projection"])
    assert torch.equal(published["projection"], model.projection)
    assert not torch.equal(tuned["hidden.0.weight"], published["hidden.0.weight"])


def test_bad_options_are_refused_with_what_is_accepted() -> None:
    model = tiny_net((3,))
    with pytest.raises(ValueError, match=r"unknown schedule 'linear'; accepted: \('cosine', 'constant', 'step'\)"):
        PepitaTrainer(model, {"schedule": "linear"}, 1, 1)
    with pytest.raises(ValueError, match=r"unknown rule option\(s\) \['eta'\]; accepted: .*'lr'"):
        PepitaTrainer(model, {"eta": 0.1}, 1, 1)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; accepted"):
        PepitaTrainer(model, {"optimizer": "rmsprop"}, 1, 1)
    for scale in (0.0, -0.05, float("nan")):
        with pytest.raises(ValueError, match="projection_scale must be a positive number"):
            PepitaNetwork((1, 2, 2), 2, [0.0], [1.0], hidden=(3,), projection_scale=scale)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        PepitaNetwork((1, 2, 2), 2, [0.0], [1.0], hidden=(3,), dropout=1.0)
    backprop = get_family("bp_mlp").build_model(get_family("bp_mlp").arch_for("mnist", hidden=[8]))
    with pytest.raises(TypeError, match="PepitaTrainer trains a PepitaNetwork, not MLP"):
        PepitaTrainer(backprop, {}, 1, 1)
    with pytest.raises(TypeError, match="PEPITA alignment needs a PepitaNetwork, not MLP"):
        pepita_alignment(backprop, torch.rand(2, 1, 28, 28), torch.tensor([0, 1]))
