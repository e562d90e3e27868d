"""Deep feedback control (Meulemans et al. 2021; DFC-SS with fixed feedback): the update against its formula computed
sample by sample on a 3-2-2 network, the trainer's step, the fixed feedback weights, the steady state of the
controlled dynamics against its fixed-point equations and the paper's analytic solution, a zero target strength,
convergence within the recipe's steps on real MNIST images, the angle to backprop, fine-tuning through
``training.train --init`` with the feedback weights bit-identical, and bad options."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from publishing import publish_test_model
from safetensors.torch import load_file
from torch.nn import functional as F

from training.recipes import effective_config, load_recipe
from training.train import main
from zoo.data import load_split
from zoo.engine.fit import FitConfig, fit
from zoo.evaluation.alignment import angle_degrees, backprop_update
from zoo.evaluation.evaluate import full_metrics, top1
from zoo.registry import get_family
from zoo.rules.feedback_control import (
    ControlState,
    DFCNetwork,
    DFCTrainer,
    Dynamics,
    check_dynamics,
    controlled_update,
    dfc_alignment,
    feedforward_state,
    local_update,
    output_target,
    simulate,
)

FAMILY = get_family("dfc_mlp")


def tiny(seed: int = 0) -> DFCNetwork:
    """3 inputs (a 1x3 image, identity normalisation), 2 tanh hidden units, 2 linear outputs, fixed weights; the
    feedback weights stay those of the random initialisation, Q_1 = W_2^T and Q_2 = I."""
    torch.manual_seed(seed)
    model = DFCNetwork((1, 1, 3), 2, [0.0], [1.0], hidden=[2])
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[0.5, -0.2, 0.3], [0.3, 0.4, -0.6]]))
        model.layers[0].bias.copy_(torch.tensor([0.1, -0.05]))
        model.layers[1].weight.copy_(torch.tensor([[0.6, -0.3], [0.2, 0.5]]))
        model.layers[1].bias.copy_(torch.tensor([0.05, 0.1]))
    return model


def formula(model: DFCNetwork, r0: torch.Tensor, voltages: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The paper's rule one sample at a time: dW_i = (phi(v_i) - phi(W_i r_{i-1} + b_i)) r_{i-1}^T with the controlled
    rate r_{i-1} = phi(v_{i-1}) below (phi = tanh hidden, identity at the output), averaged over the batch."""
    (w1, b1), (w2, b2) = [(layer.weight.detach(), layer.bias.detach()) for layer in model.layers]
    n = len(r0)
    total = {"layers.0.weight": torch.zeros_like(w1), "layers.0.bias": torch.zeros_like(b1),
             "layers.1.weight": torch.zeros_like(w2), "layers.1.bias": torch.zeros_like(b2)}
    for sample in range(n):
        x, v1, v2 = r0[sample], voltages[0][sample], voltages[1][sample]
        d1 = torch.tanh(v1) - torch.tanh(w1 @ x + b1)
        d2 = v2 - (w2 @ torch.tanh(v1) + b2)
        total["layers.0.weight"] += torch.outer(d1, x) / n
        total["layers.0.bias"] += d1 / n
        total["layers.1.weight"] += torch.outer(d2, torch.tanh(v1)) / n
        total["layers.1.bias"] += d2 / n
    return total


def recipe_rule(dataset: str = "mnist") -> dict[str, Any]:
    return effective_config("dfc_mlp", dataset, load_recipe("dfc_mlp", dataset))["fit"]["rule"]


def recipe_dynamics() -> tuple[Dynamics, int]:
    rule = recipe_rule()
    return check_dynamics(rule["dt"], rule["tau_v"], rule["alpha"], rule["k_p"]), int(rule["steps"])


def last_step(model: DFCNetwork, r0: torch.Tensor, state: ControlState, target: torch.Tensor,
              dynamics: Dynamics) -> float:
    """The residual of the dynamics at ``state``: max over layers and samples of ||v(t+1) - v(t)|| for one more
    Euler step."""
    with torch.no_grad():
        after = simulate(model, r0, state, target, dynamics, 1)
    return max(float((a - b).norm(dim=1).max()) for a, b in zip(after.v, state.v))


# --------------------------------------------------------------------------------------------- the rule by hand


def test_update_equals_the_formula_on_fixed_voltages() -> None:
    model = tiny()
    r0 = torch.tensor([[1.0, 0.5, -0.5], [0.0, 1.0, 0.2], [-0.3, 0.1, 0.9]])
    voltages = [torch.tensor([[0.7, -0.1], [0.2, 0.6], [0.0, 0.3]]), torch.tensor([[0.4, 0.2], [-0.1, 0.5],
                                                                                    [0.3, 0.3]])]
    update = local_update(model, r0, voltages)
    expected = formula(model, r0, voltages)
    assert set(update) == set(expected) == {n for n, _ in model.named_parameters()}
    for name, value in expected.items():
        torch.testing.assert_close(update[name], value, rtol=1e-6, atol=1e-7)
    # at the feedforward voltages the somatic and basal rates agree: no update
    assert all(torch.count_nonzero(d) == 0 for d in local_update(model, r0, feedforward_state(model, r0).v).values())


def test_one_step_applies_the_local_update_at_the_end_of_the_dynamics_divided_by_lambda() -> None:
    """SGD without momentum at a constant rate moves each parameter by its layer's rate times dW / lambda, with dW the
    formula at the state the controlled dynamics ended in; the loss is the feedforward cross-entropy; the feedback
    weights do not move."""
    model = tiny()
    x, y = torch.tensor([[[[0.9, 0.2, 0.4]]], [[[0.1, 0.7, 0.3]]], [[[0.5, 0.5, 0.0]]]]), torch.tensor([0, 1, 1])
    options = {"target_strength": 0.2, "steps": 60, "dt": 0.05, "tau_v": 0.1, "alpha": 0.05, "k_p": 0.5}
    lrs = [0.1, 0.4]
    dynamics = check_dynamics(options["dt"], options["tau_v"], options["alpha"], options["k_p"])
    end = controlled_update(model, x, y, 0.2, dynamics, 60).state
    r0 = model.clamped_input(x)
    expected = formula(model, r0, end.v)
    assert all(float(d.abs().max()) > 1e-4 for d in expected.values())  # the control reaches both layers
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logits = model(x).detach()
    trainer = DFCTrainer(model, {**options, "lrs": lrs, "optimizer": "sgd", "momentum": 0.0, "schedule": "constant"},
                         1, 1)
    loss = trainer.step(x, y)
    assert loss == pytest.approx(float(F.cross_entropy(logits, y)))
    for name, value in model.state_dict().items():
        if name == "feedback":
            assert torch.equal(value, before[name])
            continue
        lr = lrs[int(name.split(".")[1])]
        torch.testing.assert_close(value, before[name] + lr / 0.2 * expected[name], rtol=1e-5, atol=1e-7)


def test_feedback_weights_are_the_transposed_weight_product_and_a_fixed_buffer() -> None:
    """Q_i = W_{i+1}^T ... W_L^T at initialisation (the authors' ``weight_product``), Q_L = I, stacked in a persistent
    buffer (not a parameter) that later changes of the weights leave alone."""
    torch.manual_seed(3)
    model = FAMILY.build_model(FAMILY.arch_for("mnist", hidden=[16, 8]))
    assert isinstance(model, DFCNetwork)
    w = [layer.weight.detach() for layer in model.layers]
    q1, q2, q3 = model.feedback_blocks()
    torch.testing.assert_close(q1, w[1].t() @ w[2].t())
    torch.testing.assert_close(q2, w[2].t())
    assert torch.equal(q3, torch.eye(10))
    assert model.feedback.shape == (16 + 8 + 10, 10)
    assert "feedback" in model.state_dict() and "feedback" not in dict(model.named_parameters())
    saved = model.feedback.clone()
    with torch.no_grad():
        model.layers[2].weight.mul_(2.0)
    assert torch.equal(model.feedback, saved)
    assert all(torch.count_nonzero(layer.bias.detach()) == 0 for layer in model.linears())  # the authors' zero biases


def test_the_dynamics_settle_at_the_papers_steady_state() -> None:
    """After many steps the state solves the fixed-point equations, v_1 = W_1 r_0 + b_1 + Q_1 u,
    v_2 = W_2 tanh(v_1) + b_2 + Q_2 u, alpha u_int = e = r_L^* - v_2 and u = u_int + k_p e; for a small lambda the
    control u is the paper's analytic steady state (DFC-SSA), (J Q + alpha / (1 + alpha k_p) I)^{-1} (r_L^* - r_L^-)
    with J = dr_L/dv at the feedforward state."""
    model = tiny()
    x, y = torch.tensor([[[[0.9, 0.2, 0.4]]], [[[0.1, 0.7, 0.3]]]]), torch.tensor([1, 0])
    dynamics = Dynamics(dt=0.05, tau_v=0.1, alpha=0.2, k_p=0.5)
    (w1, b1), (w2, b2) = [(layer.weight.detach(), layer.bias.detach()) for layer in model.layers]
    q1, q2 = model.feedback_blocks()
    with torch.no_grad():
        r0 = model.clamped_input(x)
        start = feedforward_state(model, r0)
    for strength in (0.5, 1e-3):
        with torch.no_grad():
            target = output_target(start.v[-1], y, strength)
            end = simulate(model, r0, start, target, dynamics, 600)
        v1, v2 = end.v
        error = target - v2
        scale = float(end.u.abs().max())
        torch.testing.assert_close(v1, r0 @ w1.t() + b1 + end.u @ q1.t(), rtol=0, atol=1e-6 * scale + 1e-7)
        torch.testing.assert_close(v2, torch.tanh(v1) @ w2.t() + b2 + end.u @ q2.t(), rtol=0,
                                   atol=1e-6 * scale + 1e-7)
        torch.testing.assert_close(dynamics.alpha * end.u_int, error, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(end.u, end.u_int + dynamics.k_p * error, rtol=1e-5, atol=1e-8)
    for sample in range(len(x)):
        def output(dv1: torch.Tensor, dv2: torch.Tensor, n: int = sample) -> torch.Tensor:
            return torch.tanh(r0[n] @ w1.t() + b1 + dv1) @ w2.t() + b2 + dv2

        jac = torch.cat(torch.autograd.functional.jacobian(output, (torch.zeros(2), torch.zeros(2))), dim=1)
        leak = dynamics.alpha / (1 + dynamics.alpha * dynamics.k_p)
        analytic = torch.linalg.solve(jac @ model.feedback + leak * torch.eye(2), target[sample] - start.v[-1][sample])
        torch.testing.assert_close(end.u[sample], analytic, rtol=2e-3, atol=1e-7)


def test_zero_target_strength_gives_a_zero_update() -> None:
    """With lambda = 0 the target is the feedforward output, so the controller stays silent and the network stays at
    its feedforward state: every update is exactly zero, while lambda = 0.1 gives a clear one. The trainer refuses
    lambda = 0, which it divides the update by."""
    torch.manual_seed(0)
    model = FAMILY.build_model(FAMILY.arch_for("mnist", hidden=[64, 32]))
    assert isinstance(model, DFCNetwork)
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    dynamics, steps = recipe_dynamics()
    zero = controlled_update(model, x, y, 0.0, dynamics, steps)
    assert all(torch.count_nonzero(d) == 0 for d in zero.update.values())
    assert torch.count_nonzero(zero.state.u) == 0
    assert all(torch.equal(a, b) for a, b in zip(zero.state.v, feedforward_state(model, model.clamped_input(x)).v))
    nudged = controlled_update(model, x, y, 0.1, dynamics, steps)
    assert all(float(d.abs().max()) > 1e-4 for d in nudged.update.values())
    with pytest.raises(ValueError, match=r"target_strength must be a number > 0 .*got 0"):
        DFCTrainer(model, {"target_strength": 0, "lrs": [1e-3] * 3}, 1, 1)


# --------------------------------------------------------------------------------------------- real images


def test_dynamics_converge_within_the_recipe_steps(data_root: Path) -> None:
    """On 1000 real MNIST test images, for the recipe's network untrained and after one epoch of DFC on 10k training
    images (recipe rule), one more Euler step after the recipe's steps moves no somatic voltage by more than 1e-4
    (measured: 2.2e-5 untrained, 4.4e-5 trained) nor the control by more than 1e-5 (4.7e-6, 5.1e-6), while the
    voltages travelled up to ~0.1 from the feedforward state; after 5 steps they still move by more than 1e-2."""
    recipe = load_recipe("dfc_mlp", "mnist")
    dynamics, steps = recipe_dynamics()
    images, labels = load_split("mnist", "test", data_root, limit=1000)
    x, y = images.float() / 255, labels.long()
    strength = float(recipe_rule()["target_strength"])
    torch.manual_seed(0)
    model = FAMILY.build_model(FAMILY.arch_for("mnist", **recipe["arch"]))
    assert isinstance(model, DFCNetwork)
    for trained in (False, True):
        if trained:
            fit(model, *load_split("mnist", "train", data_root, limit=10000),
                FitConfig(epochs=1, rule=recipe["fit"].get("rule", {})), progress=False)
            assert top1(model, images, labels) > 80.0  # it learned (chance: 10 %)
        with torch.no_grad():
            r0 = model.clamped_input(x)
            start = feedforward_state(model, r0)
            target = output_target(start.v[-1], y, strength)
            early = simulate(model, r0, start, target, dynamics, 5)
            end = simulate(model, r0, start, target, dynamics, steps)
            after = simulate(model, r0, end, target, dynamics, 1)
        assert last_step(model, r0, early, target, dynamics) > 1e-2
        assert last_step(model, r0, end, target, dynamics) < 1e-4, f"trained={trained}"
        assert float((after.u - end.u).norm(dim=1).max()) < 1e-5, f"trained={trained}"
        assert max(float((v - v0).norm(dim=1).max()) for v, v0 in zip(end.v, start.v)) > 1e-2


def test_the_update_aligns_with_backprop_for_small_lambda(data_root: Path) -> None:
    """On 256 real MNIST images and the recipe's untrained network, the angle between dW / lambda and backprop's
    -dL/dW of the same cross-entropy, per weight matrix, bottom first. Measured at lambda = 0.01 with the recipe's
    dynamics: 20.9, 14.7, 11.3, 10.5 degrees (the small-alpha, Gauss-Newton-like regime), the same at
    lambda = 0.001 (dW / lambda changes by 0.2 %: the linear regime). With a large leak (alpha = 100) the controller
    sends Q r_L-error / alpha down, the gradient where Q is the transposed Jacobian: 17.0, 8.8, 0.5, 0.5 degrees (the
    top two layers' Q = W^T products are exact up to the derivatives the rule applies itself; the lower ones miss
    the tanh derivatives in between)."""
    images, labels = load_split("mnist", "test", data_root, limit=256)
    x, y = images.float() / 255, labels.long()
    torch.manual_seed(0)
    model = FAMILY.build_model(FAMILY.arch_for("mnist", **load_recipe("dfc_mlp", "mnist")["arch"]))
    assert isinstance(model, DFCNetwork)
    exact = backprop_update(model, x, y)
    names = ["layers.0.weight", "layers.1.weight", "layers.2.weight", "layers.3.weight"]
    assert set(exact) == set(names)
    dynamics, steps = recipe_dynamics()

    def direction(strength: float, dyn: Dynamics, count: int) -> dict[str, torch.Tensor]:
        return {n: d / strength for n, d in controlled_update(model, x, y, strength, dyn, count).update.items()}

    def angles(update: dict[str, torch.Tensor]) -> list[float]:
        return [angle_degrees(update[n], exact[n]) for n in names]

    small, smaller = direction(0.01, dynamics, steps), direction(0.001, dynamics, steps)
    assert max(angles(small)) < 25.0 and angles(small)[-1] < 15.0
    assert all(float((small[n] - smaller[n]).norm() / smaller[n].norm()) < 0.01 for n in names)
    large_alpha = angles(direction(0.01, Dynamics(dt=0.005, tau_v=0.01, alpha=100.0, k_p=0.0), 200))
    assert max(large_alpha[2:]) < 1.0
    assert all(a < s for a, s in zip(large_alpha, angles(small)))
    reported = dfc_alignment(model, x, y)
    assert FAMILY.alignment is dfc_alignment
    assert set(reported) == set(names) and all(0 <= a < 30 for a in reported.values())
    assert all(p.grad is None for p in model.parameters())


# --------------------------------------------------------------------------------------------- training, options


def test_fine_tuning_with_init_keeps_the_feedback_weights_bit_identical(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        data_root: Path) -> None:
    """A DFC checkpoint published into a manifest of its own (the real code path), then fine-tuned on Fashion-MNIST
    by ``training.train --init``: Q is the published one bit for bit, the weights moved."""
    arch = FAMILY.arch_for("mnist", hidden=[32, 32])
    rule = {"lrs": [1e-3, 1e-3, 1e-3]}
    torch.manual_seed(7)
    model = FAMILY.build_model(arch)
    initial_feedback = model.feedback.clone()
    fit(model, *load_split("mnist", "train", data_root, limit=1000), FitConfig(epochs=1, rule=rule), progress=False)
    assert torch.equal(model.feedback, initial_feedback)
    metrics = full_metrics(model.eval(), *load_split("mnist", "test", data_root, limit=200), "mnist")
    entry = publish_test_model(tmp_path, monkeypatch, "dfc_mlp", "mnist", arch, model, metrics, epochs=1)
    published = load_file(str(tmp_path / "zoo" / str(entry.file)))
    assert torch.equal(published["feedback"], initial_feedback)

    out = tmp_path / "tuned"
    assert main(["dfc_mlp", "--dataset", "fashion_mnist", "--epochs", "1", "--limit", "1000", "--test-limit", "200",
                 "--init", "dfc_mlp.mnist", "--set", "arch.hidden=[32, 32]", "--set", f"fit.rule={json.dumps(rule)}",
                 "--data-root", str(data_root), "--out", str(out), "--no-progress"]) == 0
    entry_json = json.loads((out / "entry.json").read_text())
    assert entry_json["recipe"]["config"]["init"] == "dfc_mlp.mnist"
    tuned = load_file(str(out / Path(entry_json["file"]).name))
    assert set(tuned) == set(published)
    assert torch.equal(tuned["feedback"], published["feedback"])
    assert not torch.equal(tuned["layers.0.weight"], published["layers.0.weight"])


@pytest.mark.parametrize(("options", "message"), [
    ({"target_strength": -0.1}, r"target_strength must be a number > 0 \(lambda; .*got -0.1"),
    ({"target_strength": "0.1"}, r"target_strength must be a number > 0 .*got '0.1'"),
    ({"steps": 0}, r"steps must be an int >= 1 \(Euler steps of the controlled dynamics\), got 0"),
    ({"steps": 2.5}, r"steps must be an int >= 1 .*got 2.5"),
    ({"dt": 0}, r"the dynamics need dt > 0, tau_v >= dt \(forward Euler\), alpha >= 0 and k_p >= 0; got dt=0"),
    ({"tau_v": 0.01}, r"the dynamics need .*tau_v=0.01"),
    ({"alpha": -1}, r"the dynamics need .*alpha=-1"),
    ({"k_p": -0.5}, r"the dynamics need .*k_p=-0.5"),
    ({"dt": float("nan")}, r"dt must be a finite number, got nan"),
    ({"alpha": "small"}, r"alpha must be a finite number, got 'small'"),
    ({"lrs": [0.1]}, r"lrs must list 4 non-negative learning rates, one per weight layer \(bottom first: hidden "
                     r"\[256, 256, 256\], then the output layer\), got \[0.1\]"),
    ({"lrs": 0.1}, r"lrs must list 4 non-negative learning rates"),
    ({"optimizer": "rmsprop"}, r"unknown optimizer 'rmsprop'; accepted"),
    ({"schedule": "linear"}, r"unknown schedule 'linear'; accepted"),
    ({"lr": 0.1}, r"unknown rule option\(s\) \['lr'\]; accepted: .*'lrs'"),
])
def test_bad_rule_options_are_refused_with_what_is_accepted(options: dict[str, object], message: str) -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=message):
        DFCTrainer(FAMILY.build_model(FAMILY.arch_for("mnist")), options, 1, 1)


def test_bad_network_options_and_models_are_refused() -> None:
    with pytest.raises(ValueError, match=r"hidden must list one or more positive int layer widths"):
        FAMILY.build_model(FAMILY.arch_for("mnist", hidden=[]))
    for hidden in ([256, 0], [256, True]):
        with pytest.raises(ValueError, match=r"hidden=\[256, .*\] is not valid; accepted: a list of positive integers"):
            FAMILY.arch_for("mnist", hidden=hidden)
    backprop = get_family("bp_mlp").build_model(get_family("bp_mlp").arch_for("mnist", hidden=[8]))
    with pytest.raises(TypeError, match="DFCTrainer trains a DFCNetwork, not MLP"):
        DFCTrainer(backprop, {}, 1, 1)
    with pytest.raises(TypeError, match="DFC alignment needs a DFCNetwork, not MLP"):
        dfc_alignment(backprop, torch.rand(2, 1, 28, 28), torch.tensor([0, 1]))
