"""Equilibrium propagation (Scellier & Bengio 2017; symmetric nudging, Laborieux et al. 2021): the update against its
formula computed by hand on a 2-2-2 network, the relaxation's fixed-point equations and falling energy, zero nudging,
convergence of the free phase on real MNIST images within the recipe's steps, inference under autograd, the angle
to backprop through the unrolled free phase, fine-tuning through ``training.train --init``, and bad options."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from publishing import publish_test_model
from safetensors.torch import load_file

from training.recipes import effective_config, load_recipe
from training.train import main
from zoo.data import load_split
from zoo.engine.fit import FitConfig, fit
from zoo.evaluation.alignment import angle_degrees
from zoo.evaluation.evaluate import full_metrics, top1
from zoo.registry import get_family
from zoo.rules.equilibrium_prop import (
    EPNetwork,
    EPTrainer,
    bptt_update,
    energy,
    ep_alignment,
    ep_update,
    one_hot,
    phase_contrast,
    relax,
    zero_states,
)

FAMILY = get_family("ep_mlp")


def network(dataset: str = "mnist", seed: int = 0, **arch: object) -> EPNetwork:
    torch.manual_seed(seed)
    model = FAMILY.build_model(FAMILY.arch_for(dataset, **arch))
    assert isinstance(model, EPNetwork)
    return model


def tiny(seed: int = 0) -> EPNetwork:
    """2 inputs (a 1x2 image, raw), 2 hidden units, 2 outputs, with weights and biases that keep units unclipped."""
    torch.manual_seed(seed)
    model = FAMILY.build_model(FAMILY.arch_for(in_shape=(1, 1, 2), num_classes=2, hidden=[2], input_norm="raw"))
    assert isinstance(model, EPNetwork)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[0.5, -0.2], [0.3, 0.4]]))
        model.layers[0].bias.copy_(torch.tensor([0.1, 0.05]))
        model.layers[1].weight.copy_(torch.tensor([[0.6, -0.3], [0.2, 0.5]]))
        model.layers[1].bias.copy_(torch.tensor([0.05, 0.1]))
    return model


def recipe_rule(dataset: str = "mnist") -> dict[str, object]:
    return effective_config("ep_mlp", dataset, load_recipe("ep_mlp", dataset))["fit"]["rule"]


def largest_step(model: EPNetwork, drive: torch.Tensor, states: list[torch.Tensor], target: torch.Tensor | None = None,
                 beta: float = 0.0) -> float:
    """The residual of the relaxation at ``states``: max over layers and samples of ||s_{t+1} - s_t||."""
    after = relax(model, drive, states, 1, target, beta)
    return max(float((a - b).norm(dim=1).max()) for a, b in zip(after, states))


# --------------------------------------------------------------------------------------------- the rule by hand


def test_update_equals_the_formula_on_fixed_states() -> None:
    """Two samples, states of both nudged phases written down, the products worked out by hand (beta = 1/4, so
    the update is twice the batch mean of the contrast of the local products)."""
    s0 = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    plus = [torch.tensor([[0.6, 0.2], [0.1, 0.9]]), torch.tensor([[0.8, 0.0], [0.3, 0.5]])]
    minus = [torch.tensor([[0.4, 0.2], [0.3, 0.7]]), torch.tensor([[0.5, 0.1], [0.3, 0.2]])]
    update = {name: d / (2 * 0.25) for name, d in phase_contrast(s0, plus, minus).items()}
    expected = {"layers.0.weight": [[0.2, -0.1], [0.0, 0.2]], "layers.0.bias": [0.0, 0.2],
                "layers.1.weight": [[0.22, 0.12], [-0.05, 0.29]], "layers.1.bias": [0.3, 0.2]}
    assert set(update) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(update[name], torch.tensor(value), rtol=0, atol=1e-6)


def test_one_step_applies_the_two_phase_local_products_with_each_layers_rate() -> None:
    """The trainer (SGD, no momentum, constant rate) moves each weight by its layer's rate times
    1/(2 beta) <s_l^+ s_{l-1}^+T - s_l^- s_{l-1}^-T>, with the phases run by the network's own dynamics and the
    products formed sample by sample."""
    model = tiny()
    x = torch.tensor([[[[0.9, 0.2]]], [[[0.1, 0.7]]], [[[0.5, 0.5]]]])
    y = torch.tensor([0, 1, 1])
    beta, lrs = 0.3, [0.1, 0.4]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    s0, drive, free = model.free_phase(x)
    target = one_hot(model, y)
    plus = relax(model, drive, free, 10, target, beta)
    minus = relax(model, drive, free, 10, target, -beta)
    assert not torch.equal(plus[1], minus[1])  # the nudging reaches the output ...
    assert not torch.equal(plus[0], minus[0])  # ... and, through W_2^T, the hidden layer
    trainer = EPTrainer(model, {"beta": beta, "nudged_steps": 10, "lrs": lrs, "optimizer": "sgd", "momentum": 0.0,
                                "schedule": "constant"}, 1, 1)
    trainer.step(x, y)
    for layer, (below_p, below_m, lr) in enumerate(zip([s0, plus[0]], [s0, minus[0]], lrs)):
        products = sum(torch.outer(plus[layer][n], below_p[n]) - torch.outer(minus[layer][n], below_m[n])
                       for n in range(len(x)))
        assert isinstance(products, torch.Tensor)
        moved = model.layers[layer].weight.detach() - before[f"layers.{layer}.weight"]
        torch.testing.assert_close(moved, lr / (2 * beta) * products / len(x), rtol=1e-5, atol=1e-7)
        moved_bias = model.layers[layer].bias.detach() - before[f"layers.{layer}.bias"]
        torch.testing.assert_close(moved_bias, lr / (2 * beta) * (plus[layer] - minus[layer]).mean(0), rtol=1e-5,
                                   atol=1e-7)


def test_phases_end_at_the_fixed_points_of_the_same_dynamics() -> None:
    """Free phase: h = rho(W1 x + b1 + W2^T o), o = rho(W2 h + b2). Nudged phase: the same hidden equation and
    o = rho((W2 h + b2 + beta y) / (1 + beta)), the minimiser of the nudged energy over o."""
    model = tiny()
    x = torch.tensor([[[[0.9, 0.2]]], [[[0.1, 0.7]]]])
    target = one_hot(model, torch.tensor([1, 0]))
    (w1, b1), (w2, b2) = [(layer.weight.detach(), layer.bias.detach()) for layer in model.layers]
    s0, drive, free = model.free_phase(x)
    for beta, (h, o) in [(0.0, free), (0.3, relax(model, drive, free, 40, target, 0.3)),
                         (-0.3, relax(model, drive, free, 40, target, -0.3))]:
        torch.testing.assert_close(h, (s0 @ w1.t() + b1 + o @ w2).clamp(0, 1), rtol=0, atol=1e-6)
        torch.testing.assert_close(o, ((h @ w2.t() + b2 + beta * target) / (1 + beta)).clamp(0, 1), rtol=0,
                                   atol=1e-6)
    torch.testing.assert_close(model(x), free[0] @ w2.t() + b2)  # the logits: the output's net input


def test_the_nudged_energy_never_increases() -> None:
    """Every step (odd layers, then even layers) minimises F exactly over a block of layers, with two hidden
    layers so that both halves of a step move several layers."""
    model = network(hidden=[64, 32])
    x = torch.rand(16, 1, 28, 28)
    target = one_hot(model, torch.arange(16) % 10)
    s0 = model.clamped_input(x)
    drive = model.linears()[0](s0)
    with torch.no_grad():
        for beta in (0.0, 0.4, -0.4):
            states = zero_states(model, drive)
            values = [energy(model, s0, states, target, beta)]
            for _ in range(15):
                states = relax(model, drive, states, 1, target, beta)
                values.append(energy(model, s0, states, target, beta))
            steps = torch.stack(values)
            assert (steps[1:] <= steps[:-1] + 1e-4).all(), beta
            assert (steps[-1] < steps[0] - 1e-2).all()  # it moved


def test_zero_nudging_gives_a_zero_update() -> None:
    """With beta = 0 the nudged phases are the free dynamics continued from the free fixed point: the contrast of
    the local products is zero (exactly for +-0, and to the residual against the free states), while beta = 0.2
    gives a clear one; the trainer refuses beta = 0, which the update would divide by."""
    model = network()
    x = torch.rand(32, 1, 28, 28)
    target = one_hot(model, torch.arange(32) % 10)
    with torch.no_grad():
        s0, drive, free = model.free_phase(x)
        zero_plus = relax(model, drive, free, 10, target, 0.0)
        zero_minus = relax(model, drive, free, 10, target, -0.0)
        nudged = relax(model, drive, free, 10, target, 0.2)
    for name, d in phase_contrast(s0, zero_plus, zero_minus).items():
        assert torch.count_nonzero(d) == 0, name
    for name, d in phase_contrast(s0, zero_plus, free).items():
        assert float(d.abs().max()) < 1e-6, name
    assert all(float(d.abs().max()) > 1e-3 for d in phase_contrast(s0, nudged, free).values())
    with pytest.raises(ValueError, match=r"beta must be a number with 0 < beta < 1 .*got 0"):
        EPTrainer(model, {"beta": 0}, 1, 1)


# --------------------------------------------------------------------------------------------- real images


def test_free_phase_converges_within_the_recipe_steps(data_root: Path) -> None:
    """On 1000 real MNIST test images, for the recipe's network untrained and after one epoch of EP on 10k training
    images (recipe rule), the residual ||s_t - s_{t-1}|| falls below 1e-5 within the recipe's T1 (and the nudged
    phases within T2); after 2 steps it is still large, so the steps are needed."""
    recipe = load_recipe("ep_mlp", "mnist")
    arch = FAMILY.arch_for("mnist", **recipe["arch"])
    t1, t2 = arch["free_steps"], recipe_rule()["nudged_steps"]
    images, labels = load_split("mnist", "test", data_root, limit=1000)
    x, target = images.float() / 255, torch.nn.functional.one_hot(labels.long(), 10).float()
    torch.manual_seed(0)
    model = FAMILY.build_model(arch)
    assert isinstance(model, EPNetwork)
    for trained in (False, True):
        if trained:
            fit(model, *load_split("mnist", "train", data_root, limit=10000),
                FitConfig(epochs=1, rule=recipe["fit"]["rule"]), progress=False)
            assert top1(model, images, labels) > 80.0  # it learned (chance: 10 %)
        with torch.no_grad():
            s0, drive, _ = model.free_phase(x)
            early = relax(model, drive, zero_states(model, drive), 2)
            free = relax(model, drive, zero_states(model, drive), t1 - 1)
            assert largest_step(model, drive, early) > 1e-2
            assert largest_step(model, drive, free) < 1e-5, f"trained={trained}"
            settled = relax(model, drive, free, 1)  # T1 steps
            for beta in (0.2, -0.2):
                nudged = relax(model, drive, settled, t2 - 1, target, beta)
                assert largest_step(model, drive, nudged, target, beta) < 1e-4, f"trained={trained}, beta={beta}"


def test_inference_is_differentiable_through_the_relaxation() -> None:
    """model(x) needs no label; under torch.enable_grad() the input gradient flows through the T1 unrolled steps and
    equals a finite difference of the logits (float64); under no_grad the logits are the same."""
    model = network(hidden=[40]).double().eval()
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    direction = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.enable_grad():
        xi = x.clone().requires_grad_(True)
        logits = model(xi)
        (grad,) = torch.autograd.grad(logits[:, 3].sum(), xi)
    assert float(grad.abs().sum()) > 0
    with torch.no_grad():
        torch.testing.assert_close(model(x), logits.detach())
        eps = 1e-6
        numeric = (model(x + eps * direction)[:, 3] - model(x - eps * direction)[:, 3]).sum() / (2 * eps)
    torch.testing.assert_close((grad * direction).sum(), numeric, rtol=1e-5, atol=1e-8)


def test_the_update_approaches_backprop_through_the_free_phase_as_beta_shrinks() -> None:
    """The angle to -dC/dW by BPTT through the unrolled free phase: below 3 degrees at beta = 0.01; at beta = 0.2
    symmetric nudging is closer than one-sided (its bias is second order in beta); ep_alignment reports the weights."""
    model = network(hidden=[100])
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    y = torch.arange(64) % 10
    exact = bptt_update(model, x, y)

    def angles(beta: float, symmetric: bool) -> list[float]:
        update = ep_update(model, x, y, beta, 20, symmetric).update
        return [angle_degrees(update[name], exact[name]) for name in ("layers.0.weight", "layers.1.weight")]

    assert max(angles(0.01, True)) < 3.0
    assert all(s < o for s, o in zip(angles(0.2, True), angles(0.2, False)))
    reported = ep_alignment(model, x, y)
    assert set(reported) == {"layers.0.weight", "layers.1.weight"} and all(0 <= a < 30 for a in reported.values())
    assert all(p.grad is None for p in model.parameters())


# --------------------------------------------------------------------------------------------- training, options


def test_fine_tuning_with_init_continues_from_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             data_root: Path) -> None:
    """An EP checkpoint published into a manifest of its own (the real code path), then fine-tuned on Fashion-MNIST
    by ``training.train --init`` with the same rule: it starts from the published weights and moves them."""
    arch = FAMILY.arch_for("mnist", hidden=[64], input_norm="raw")
    torch.manual_seed(7)
    model = FAMILY.build_model(arch)
    fit(model, *load_split("mnist", "train", data_root, limit=1000), FitConfig(epochs=1, rule=recipe_rule()),
        progress=False)
    metrics = full_metrics(model.eval(), *load_split("mnist", "test", data_root, limit=200), "mnist")
    entry = publish_test_model(tmp_path, monkeypatch, "ep_mlp", "mnist", arch, model, metrics, epochs=1)
    published = load_file(str(tmp_path / "zoo" / str(entry.file)))

    fashion_x, fashion_y = load_split("fashion_mnist", "test", data_root, limit=500)
    start = top1(model, fashion_x, fashion_y)
    out = tmp_path / "tuned"
    assert main(["ep_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--limit", "2000", "--test-limit", "500",
                 "--init", "ep_mlp.mnist", "--set", "arch.hidden=[64]", "--set", "arch.input_norm=raw",
                 "--set", "fit.rule={\"lrs\": [0.001, 0.0005]}", "--data-root", str(data_root), "--out", str(out),
                 "--no-progress"]) == 0
    entry = json.loads((out / "entry.json").read_text())
    assert entry["recipe"]["config"]["init"] == "ep_mlp.mnist"
    tuned = load_file(str(out / Path(entry["file"]).name))
    assert set(tuned) == set(published)
    assert not torch.equal(tuned["layers.0.weight"], published["layers.0.weight"])
    assert entry["metrics"]["top1"] > start + 10  # the MNIST net learned Fashion-MNIST from where it was


@pytest.mark.parametrize(("options", "message"), [
    ({"beta": 1.0}, r"beta must be a number with 0 < beta < 1 \(symmetric nudging\).*got 1.0"),
    ({"beta": -0.1, "symmetric": False}, r"beta must be a number with beta > 0.*got -0.1"),
    ({"beta": "0.2"}, r"beta must be a number .*got '0.2'"),
    ({"nudged_steps": 0}, r"nudged_steps must be an int >= 1, got 0"),
    ({"symmetric": "yes"}, r"symmetric must be true or false, got 'yes'"),
    ({"lrs": [0.1]}, r"lrs must list 2 non-negative learning rates, one per weight layer \(bottom first: hidden "
                     r"\[500\], then the output layer\), got \[0.1\]"),
    ({"lrs": 0.1}, r"lrs must list 2 non-negative learning rates"),
    ({"optimizer": "rmsprop"}, r"unknown optimizer 'rmsprop'; accepted"),
    ({"schedule": "linear"}, r"unknown schedule 'linear'; accepted"),
    ({"lr": 0.1}, r"unknown rule option\(s\) \['lr'\]; accepted: .*'lrs'"),
])
def test_bad_rule_options_are_refused_with_what_is_accepted(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EPTrainer(network(), options, 1, 1)


def test_bad_network_options_and_models_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown input_norm 'l2'; accepted: \('raw', 'standard'\)"):
        network(input_norm="l2")
    with pytest.raises(ValueError, match=r"free_steps=0 is not valid; accepted: a positive integer"):
        network(free_steps=0)
    with pytest.raises(ValueError, match=r"hidden=\[500, 0\] is not valid; accepted: a list of positive integers"):
        network(hidden=[500, 0])
    with pytest.raises(ValueError, match="a nudged phase .* needs the one-hot target"):
        model = network(hidden=[8])
        drive = model.linears()[0](model.clamped_input(torch.rand(2, 1, 28, 28)))
        relax(model, drive, zero_states(model, drive), 1, None, 0.5)
    backprop = get_family("bp_mlp").build_model(get_family("bp_mlp").arch_for("mnist", hidden=[8]))
    with pytest.raises(TypeError, match="EPTrainer trains an EPNetwork, not MLP"):
        EPTrainer(backprop, {}, 1, 1)
    with pytest.raises(TypeError, match="EP alignment needs an EPNetwork, not MLP"):
        ep_alignment(backprop, torch.rand(2, 1, 28, 28), torch.tensor([0, 1]))
