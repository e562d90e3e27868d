"""Gradient-free credit assignment rules: feedback alignment, sign symmetry, DFA, DRTP and DTP.

Each rule is checked against its defining formula computed by hand on tiny networks, against backprop where the
rule reduces to it, through a checkpoint round trip, and by a short real training run on MNIST.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from datasets import root_with
from torch import nn
from torch.nn import functional as F

from zoo.evaluation.alignment import angle_degrees
from zoo.registry import architectures, families, get_family, rules
from zoo.rules.base import give_labels, true_gradients
from zoo.rules.direct_feedback import DirectFeedbackConv2d, DirectFeedbackLinear, ErrorSignal
from zoo.rules.feedback_alignment import FeedbackConv2d, FeedbackLinear, sign_feedback
from zoo.rules.target_prop import DTPNetwork, DTPTrainer, compute_targets, inverse_loss, local_forward
from zoo.weights.checkpoint import load_into, save_checkpoint

# the gradient-style families, from the registry: a registered architecture's network, and an update that
# approximates its gradient (an alignment to measure); spiking nets and Forward-Forward have no such gradient
GRADIENT_FAMILIES = sorted(n for n, f in families().items() if f.architecture is not None and f.alignment is not None)


def tiny(name: str, **overrides: object) -> nn.Module:
    """A small untrained model of a family on its first dataset's inputs (MLP: hidden [16, 12])."""
    family = get_family(name)
    if family.architecture == "mlp":
        overrides.setdefault("hidden", [16, 12])
    return family.build_model(family.arch_for(family.datasets[0], **overrides))


def images(name: str, n: int) -> torch.Tensor:
    """``n`` random images shaped for the family's first dataset."""
    return torch.rand(n, *get_family(name).arch_for(get_family(name).datasets[0])["in_shape"])


def data_root() -> Path:
    return root_with("mnist")


# --------------------------------------------------------------------------------------------- layers: FA, sign


def linear_grads(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_(True)
    layer.zero_grad(set_to_none=True)
    layer(x).backward(g)
    return x.grad, layer.weight.grad, layer.bias.grad


def test_feedback_linear_forward_is_plain_linear_and_backward_uses_b() -> None:
    torch.manual_seed(0)
    layer = FeedbackLinear(7, 5, mode="fa")
    plain = nn.Linear(7, 5)
    plain.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    x, g = torch.randn(4, 7), torch.randn(4, 5)
    assert torch.equal(layer(x), plain(x))
    gx, gw, gb = linear_grads(layer, x, g)
    assert layer.feedback.shape == layer.weight.shape
    assert not torch.allclose(layer.feedback, layer.weight)
    torch.testing.assert_close(gx, g @ layer.feedback)  # B, not W
    torch.testing.assert_close(gw, g.t() @ x)
    torch.testing.assert_close(gb, g.sum(0))


def test_fa_with_b_equal_w_is_exactly_backprop() -> None:
    torch.manual_seed(1)
    layer = FeedbackLinear(6, 3, mode="fa")
    layer.feedback.copy_(layer.weight.detach())
    plain = nn.Linear(6, 3)
    plain.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    x, g = torch.randn(5, 6), torch.randn(5, 3)
    for ours, exact in zip(linear_grads(layer, x, g), linear_grads(plain, x, g)):
        torch.testing.assert_close(ours, exact, rtol=0, atol=1e-6)


def test_fa_mlp_with_b_equal_w_gives_the_autograd_gradient() -> None:
    torch.manual_seed(2)
    model = tiny("fa_mlp")
    for layer in [*model.hidden, model.head]:
        layer.feedback.copy_(layer.weight.detach())
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    ours = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    with true_gradients():
        exact = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    for a, b in zip(ours, exact):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_feedback_conv_uses_b_for_the_input_gradient() -> None:
    torch.manual_seed(3)
    conv = FeedbackConv2d(2, 3, 3, mode="fa")
    plain = nn.Conv2d(2, 3, 3)
    plain.load_state_dict({"weight": conv.weight.detach(), "bias": conv.bias.detach()})
    x = torch.randn(4, 2, 7, 7)
    g = torch.randn(4, 3, 5, 5)
    assert torch.equal(conv(x), plain(x))
    xr = x.clone().requires_grad_(True)
    conv(xr).backward(g)
    torch.testing.assert_close(xr.grad, torch.nn.grad.conv2d_input(x.shape, conv.feedback, g))
    torch.testing.assert_close(conv.weight.grad, torch.nn.grad.conv2d_weight(x, conv.weight.shape, g))
    torch.testing.assert_close(conv.bias.grad, g.sum((0, 2, 3)))
    # B = W recovers autograd's gradients exactly
    conv.feedback.copy_(conv.weight.detach())
    conv.zero_grad()
    xr = x.clone().requires_grad_(True)
    conv(xr).backward(g)
    xp = x.clone().requires_grad_(True)
    plain(xp).backward(g)
    torch.testing.assert_close(xr.grad, xp.grad)
    torch.testing.assert_close(conv.weight.grad, plain.weight.grad)


def test_usf_feedback_is_sign_of_w_norm_matched() -> None:
    torch.manual_seed(4)
    layer = FeedbackLinear(6, 4, mode="usf")
    x, g = torch.randn(3, 6), torch.randn(3, 4)
    w = layer.weight.detach()
    b = torch.sign(w) * (w.norm() / math.sqrt(w.numel()))  # ||B||_F = ||W||_F
    gx, gw, _ = linear_grads(layer, x, g)
    torch.testing.assert_close(gx, g @ b)
    torch.testing.assert_close(gw, g.t() @ x)
    torch.testing.assert_close(b.norm(), w.norm())
    assert "feedback" not in layer.state_dict()  # nothing stored: B follows W
    raw = FeedbackLinear(6, 4, mode="usf", feedback_scale="none")
    raw.load_state_dict(layer.state_dict())
    torch.testing.assert_close(linear_grads(raw, x, g)[0], g @ torch.sign(w))


def test_frsf_uses_fixed_random_magnitudes_with_the_sign_of_w() -> None:
    torch.manual_seed(5)
    conv = FeedbackConv2d(2, 3, 3, mode="frsf")
    r = conv.feedback_r.clone()
    x, g = torch.randn(2, 2, 6, 6), torch.randn(2, 3, 4, 4)
    grads = []
    for _ in range(2):
        xr = x.clone().requires_grad_(True)
        conv(xr).backward(g)
        grads.append(xr.grad)
    w = conv.weight.detach()
    m = r.abs() * torch.sign(w)
    b = m * (w.norm() / m.norm())
    torch.testing.assert_close(grads[0], torch.nn.grad.conv2d_input(x.shape, b, g))
    assert torch.equal(grads[0], grads[1])  # R is fixed
    assert torch.equal(conv.feedback_r, r)
    torch.testing.assert_close(sign_feedback(w, "frsf", r), b)


def test_brsf_redraws_r_each_batch_keeping_the_sign_of_w() -> None:
    torch.manual_seed(6)
    layer = FeedbackLinear(9, 4, mode="brsf")
    w = layer.weight.detach()
    x = torch.randn(4, 9)
    eye = torch.eye(4)  # grad_out = identity: grad_x is B itself
    seen = []
    for _ in range(2):
        b = linear_grads(layer, x, eye)[0]
        assert torch.equal(torch.sign(b), torch.sign(w))
        torch.testing.assert_close(b.norm(), w.norm())
        assert not torch.allclose(b.abs() / b.abs().sum(), w.abs() / w.abs().sum())  # random magnitudes
        seen.append(b)
    assert not torch.allclose(seen[0], seen[1])  # a fresh R every batch
    assert "feedback_r" not in layer.state_dict()


# --------------------------------------------------------------------------------------------- DFA and DRTP


def mlp_pieces(model: nn.Module, x: torch.Tensor, act=torch.relu) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                                                           torch.Tensor]:
    """Pre-activations ``z_l``, activations ``h_l`` (``h_0`` = flattened normalised input) and logits of a model
    with ``hidden`` / ``head`` linear layers, computed by hand."""
    with torch.no_grad():
        hs, zs = [model.input(x).flatten(1)], []
        for layer in model.hidden:
            zs.append(F.linear(hs[-1], layer.weight, layer.bias))
            hs.append(act(zs[-1]))
        return zs, hs, F.linear(hs[-1], model.head.weight, model.head.bias)


def rule_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_dfa_updates_follow_the_projected_output_error() -> None:
    torch.manual_seed(8)
    model = tiny("dfa_mlp")
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    zs, hs, logits = mlp_pieces(model, x)
    e = (logits.softmax(1) - F.one_hot(y, 10).float()) / len(y)  # dL/dlogits of the batch-mean loss
    grads = rule_grads(model, x, y)
    torch.testing.assert_close(grads["head.weight"], e.t() @ hs[2])  # output layer: its true error
    torch.testing.assert_close(grads["head.bias"], e.sum(0))
    delta2 = (e @ model.head.feedback) * (zs[1] > 0)  # e projected to hidden layer 2 by B_2
    delta1 = (e @ model.hidden[1].feedback) * (zs[0] > 0)  # ... and to hidden layer 1 by B_1
    torch.testing.assert_close(grads["hidden.1.weight"], delta2.t() @ hs[1])
    torch.testing.assert_close(grads["hidden.1.bias"], delta2.sum(0))
    torch.testing.assert_close(grads["hidden.0.weight"], delta1.t() @ hs[0])
    assert model.head.feedback.shape == (10, 12) and model.hidden[1].feedback.shape == (10, 16)


def test_dfa_with_one_hidden_layer_and_b_equal_w_out_is_backprop() -> None:
    torch.manual_seed(9)
    model = tiny("dfa_mlp", hidden=[20])
    model.head.feedback.copy_(model.head.weight.detach())
    x, y = torch.rand(5, 1, 28, 28), torch.randint(0, 10, (5,))
    ours = rule_grads(model, x, y)
    with true_gradients():
        exact = rule_grads(model, x, y)
    for name in exact:
        torch.testing.assert_close(ours[name], exact[name], rtol=1e-5, atol=1e-7)


def conv_under_dfa(padding: int, projection: str) -> tuple[DirectFeedbackConv2d, torch.Tensor, torch.Tensor,
                                                             torch.Tensor, torch.Tensor]:
    """A DFA convolution (2 -> 3 maps, 3x3, inputs 2x6x6, 4 classes) under a DFA linear head, after one backward
    pass of 5 random images: the conv, its input ``x`` (with its gradient), its output ``h``, the output error ``e``
    and the gradient ``delta`` its output received from the head's projection."""
    signal = ErrorSignal()
    conv = DirectFeedbackConv2d(2, 3, 3, in_shape=(2, 6, 6), num_classes=4, signal=signal, padding=padding,
                                projection=projection)
    size = 6 + 2 * padding - 2
    head = DirectFeedbackLinear(3 * size * size, 4, 4, signal)
    x = torch.randn(5, 2, 6, 6, requires_grad=True)
    y = torch.randint(0, 4, (5,))
    h = conv(x)
    logits = head(torch.relu(h).flatten(1))
    F.cross_entropy(logits, y).backward()
    e = (logits.detach().softmax(1) - F.one_hot(y, 4).float()) / 5
    delta = (e @ head.feedback).view(5, 3, size, size) * (h.detach() > 0)
    return conv, x, h, e, delta


def test_dfa_conv_projects_the_error_onto_its_input() -> None:
    torch.manual_seed(10)
    conv, x, _, e, delta = conv_under_dfa(padding=0, projection="dense")
    torch.testing.assert_close(x.grad, (e @ conv.feedback).view_as(x))
    torch.testing.assert_close(conv.weight.grad, torch.nn.grad.conv2d_weight(x.detach(), conv.weight.shape, delta))
    torch.testing.assert_close(conv.bias.grad, delta.sum((0, 2, 3)))


def test_dfa_kernel_projection_broadcasts_the_error_through_a_k_by_k_kernel() -> None:
    """BioTorch's convolutional DFA: every input position of a channel receives the error through the sum of the
    kernel taps that reach it, so inside the map it is ``e B.sum(k, k)`` and in a corner only the taps that reach."""
    torch.manual_seed(12)
    conv, x, _, e, delta = conv_under_dfa(padding=1, projection="kernel")
    b = conv.feedback
    assert b.shape == (4, 2, 3, 3) and b.abs().max() <= 1 / math.sqrt(4 * 9)
    inside = torch.einsum("nj,jc->nc", e, b.sum((2, 3)))
    torch.testing.assert_close(x.grad[:, :, 1:-1, 1:-1], inside[:, :, None, None].expand(5, 2, 4, 4))
    # output positions 0 and 1 reach input position 0 through kernel taps 1 and 0 of each axis
    torch.testing.assert_close(x.grad[:, :, 0, 0], torch.einsum("nj,jc->nc", e, b[:, :, :2, :2].sum((2, 3))))
    # the weight learns from what reaches its output
    torch.testing.assert_close(conv.weight.grad,
                               torch.nn.grad.conv2d_weight(x.detach(), conv.weight.shape, delta, padding=1))


def test_dfa_resnet20_with_the_kernel_projection_trains_and_round_trips(tmp_path: Path) -> None:
    family = get_family("dfa_resnet20")
    assert family.default_arch["projection"] == "dense"  # every published DFA checkpoint: dense
    model = family.build_model(family.arch_for("cifar10", projection="kernel"))
    convs = [m for m in model.modules() if isinstance(m, DirectFeedbackConv2d)]
    assert len(convs) == 19 and all(m.feedback.shape == (10, m.in_channels, 3, 3) for m in convs)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    F.cross_entropy(model(x), y).backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in convs)
    arch = family.arch_for("cifar10", projection="kernel")
    path = save_checkpoint(model, tmp_path / "k.safetensors", entrypoint="dfa_resnet20", arch=arch)
    again = load_into(family.build_model(arch), path)
    assert all(torch.equal(a.feedback, b.feedback) for a, b in zip(convs, (m for m in again.modules()
                                                                         if isinstance(m, DirectFeedbackConv2d))))
    with pytest.raises(ValueError, match="accepted: \\('dense', 'kernel'\\)"):
        family.build_model(family.arch_for("cifar10", projection="sparse"))


def test_drtp_hidden_updates_use_the_target_not_the_error() -> None:
    torch.manual_seed(11)
    model = tiny("drtp_mlp")
    assert isinstance(model.act, nn.Tanh)  # DRTP's default units
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    t = F.one_hot(y, 10).float()
    zs, hs, logits = mlp_pieces(model, x, torch.tanh)
    give_labels(model, y)
    grads = rule_grads(model, x, y)
    e = (logits.softmax(1) - t) / len(y)
    torch.testing.assert_close(grads["head.weight"], e.t() @ hs[2])  # output layer: its true error
    delta2 = (-t / len(y) @ model.head.feedback) * (1 - torch.tanh(zs[1]) ** 2)
    delta1 = (-t / len(y) @ model.hidden[1].feedback) * (1 - torch.tanh(zs[0]) ** 2)
    torch.testing.assert_close(grads["hidden.1.weight"], delta2.t() @ hs[1])
    torch.testing.assert_close(grads["hidden.0.weight"], delta1.t() @ hs[0])
    # A different prediction (another output layer) changes nothing below it.
    with torch.no_grad():
        model.head.weight.mul_(-3.0).add_(1.0)
        model.head.bias.add_(5.0)
    other = rule_grads(model, x, y)
    assert not torch.allclose(other["head.weight"], grads["head.weight"])
    for name in ["hidden.0.weight", "hidden.0.bias", "hidden.1.weight", "hidden.1.bias"]:
        assert torch.equal(other[name], grads[name])
    give_labels(model, None)


def test_drtp_without_a_target_fails_loudly() -> None:
    model = tiny("drtp_mlp")
    with pytest.raises(RuntimeError, match="no target set"):
        F.cross_entropy(model(torch.rand(2, 1, 28, 28)), torch.tensor([1, 2])).backward()


# --------------------------------------------------------------------------------------------- DTP


def test_dtp_targets_follow_the_difference_correction() -> None:
    torch.manual_seed(12)
    model = DTPNetwork((1, 4, 4), 3, [0.5], [0.5], hidden=(5, 4, 6))
    x, y = torch.rand(7, 1, 4, 4), torch.randint(0, 3, (7,))
    lr = 0.3
    out = compute_targets(model, local_forward(model, x), y, lr)
    h0 = (x.flatten(1) - 0.5) / 0.5
    h1 = torch.tanh(h0 @ model.hidden[0].weight.t() + model.hidden[0].bias)
    h2 = torch.tanh(h1 @ model.hidden[1].weight.t() + model.hidden[1].bias)
    h3 = torch.tanh(h2 @ model.hidden[2].weight.t() + model.hidden[2].bias)
    logits = h3 @ model.head.weight.t() + model.head.bias
    for ours, ref in zip(out.h, [h0, h1, h2, h3]):
        torch.testing.assert_close(ours, ref)
    # top target: a gradient step on the summed cross-entropy
    p = logits.softmax(1)
    grad_h3 = (p - F.one_hot(y, 3).float()) @ model.head.weight
    t3 = h3 - lr * grad_h3

    def g(layer: int, h: torch.Tensor) -> torch.Tensor:
        inv = model.inverses[layer - 2]
        return torch.tanh(h @ inv.weight.t() + inv.bias)

    t2 = h2 + g(3, t3) - g(3, h3)
    t1 = h1 + g(2, t2) - g(2, h2)
    torch.testing.assert_close(out.target[3], t3)
    torch.testing.assert_close(out.target[2], t2)
    torch.testing.assert_close(out.target[1], t1)
    assert out.target[0] is None
    # with perfect inverses the correction makes g(target) land on the target: t_{l-1} - h_{l-1} = g(t_l) - g(h_l)
    torch.testing.assert_close(out.target[2] - out.h[2], g(3, t3) - g(3, h3))


def test_dtp_hidden_update_descends_the_local_target_loss() -> None:
    torch.manual_seed(13)
    model = DTPNetwork((1, 4, 4), 3, [0.5], [0.5], hidden=(8, 8))
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 3, (16,))
    trainer = DTPTrainer(model, {"lr": 0.0, "inverse_lr": 0.0, "target_lr": 0.5}, 1, 1)
    trainer.forward_gradients(x, y)
    out = compute_targets(model, local_forward(model, x), y, 0.5)
    # gradient of 0.5*||f(W h0) - t1||^2 summed over units, batch-mean, times 2 (the loss is the squared norm)
    z1 = out.h[0] @ model.hidden[0].weight.t() + model.hidden[0].bias
    delta = 2 * (torch.tanh(z1) - out.target[1]) * (1 - torch.tanh(z1) ** 2) / len(y)
    torch.testing.assert_close(model.hidden[0].weight.grad, delta.t() @ out.h[0])
    assert model.inverses[0].weight.grad is None  # forward loss never reaches the inverses


def test_dtp_inverse_loss_decreases() -> None:
    torch.manual_seed(14)
    model = DTPNetwork((1, 8, 8), 10, [0.5], [0.5], hidden=(32, 32))
    x = torch.rand(64, 1, 8, 8)
    trainer = DTPTrainer(model, {"inverse_lr": 0.01, "noise": 0.05, "schedule": "constant"}, 100, 1)
    with torch.no_grad():
        h = model.activations(x)
    before = trainer.train_inverses(h)
    for _ in range(60):
        after = trainer.train_inverses(h)
    assert after < 0.5 * before
    torch.manual_seed(0)
    assert float(inverse_loss(model, h, 0.05).detach()) < 0.5 * before


# --------------------------------------------------------------------------------------------- families


@pytest.mark.parametrize("name", [n for n in GRADIENT_FAMILIES if get_family(n).rule != "bp"])
def test_forward_equals_the_backprop_network_with_the_same_weights(name: str) -> None:
    torch.manual_seed(15)
    rule = tiny(name)
    family = get_family(name)
    bp_family = get_family(f"bp_{family.architecture}")
    # the same architecture options (e.g. DRTP's tanh units), without dropout
    shared = {k: v for k, v in family.default_arch.items() if k in bp_family.default_arch}
    shared.update({**({"dropout": 0.0} if "dropout" in bp_family.default_arch else {}),
                   **({"hidden": [16, 12]} if family.architecture == "mlp" else {})})
    bp = bp_family.build_model(bp_family.arch_for(family.datasets[0], **shared))
    bp_state = bp.state_dict()
    rule.load_state_dict({**rule.state_dict(), **{k: v for k, v in bp_state.items()}}, strict=True)
    x = images(name, 3)
    for mode in (True, False):  # training mode (rule layers active) and eval mode
        rule.train(mode)
        bp.train(mode)
        assert torch.equal(rule(x), bp(x))
        assert torch.equal(rule.features(x), bp.features(x))


@pytest.mark.parametrize("name", GRADIENT_FAMILIES)
def test_family_metadata_is_complete(name: str) -> None:
    family = get_family(name)
    assert family.summary and family.paper and family.alignment is not None
    rule = rules()[family.rule]
    if family.name not in {f"{rule.name}_{variant}" for variant in rule.variants}:  # built through a layer kit
        options = set(architectures()[str(family.architecture)].options) | set(rule.options)
        assert set(family.default_arch) == options  # every option has its default recorded
    assert issubclass(family.trainer, __import__("zoo.engine.trainer", fromlist=["Trainer"]).Trainer)


@pytest.mark.parametrize("name", ["bp_mlp", "bp_lenet"])
def test_backprop_alignment_is_zero(name: str) -> None:
    torch.manual_seed(16)
    model = tiny(name)
    angles = get_family(name).alignment(model, torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    assert angles and all(a < 1e-3 for a in angles.values())


def test_alignment_measures_the_rule_not_backprop() -> None:
    torch.manual_seed(17)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    model = tiny("fa_mlp")
    angles = get_family("fa_mlp").alignment(model, x, y)
    assert set(angles) == {"hidden.0.weight", "hidden.1.weight", "head.weight"}
    assert angles["head.weight"] < 1e-3 and angles["hidden.1.weight"] > 20
    for layer in [*model.hidden, model.head]:
        layer.feedback.copy_(layer.weight.detach())
    assert all(a < 0.1 for a in get_family("fa_mlp").alignment(model, x, y).values())
    assert model.training and model.hidden[0].weight.grad is None  # mode and .grad untouched
    for name in ["usf_lenet", "dfa_lenet", "drtp_mlp", "dtp_mlp", "dfa_cnn"]:
        angles = get_family(name).alignment(tiny(name), images(name, 8), y)
        assert angles and all(0.0 <= a <= 180.0 for a in angles.values())
    assert angle_degrees(torch.ones(3), -torch.ones(3)) == pytest.approx(180.0)


@pytest.mark.parametrize("name,buffers", [
    ("fa_mlp", ["hidden.0.feedback", "hidden.1.feedback", "head.feedback"]),
    ("fa_lenet", ["conv1.feedback", "conv2.feedback", "fc.feedback", "head.feedback"]),
    ("frsf_lenet", ["conv1.feedback_r", "conv2.feedback_r", "fc.feedback_r", "head.feedback_r"]),
    ("dfa_lenet", ["conv2.feedback", "fc.feedback", "head.feedback"]),
    ("drtp_mlp", ["hidden.1.feedback", "head.feedback"]),
    ("dtp_mlp", ["inverses.0.weight"]),
])
def test_checkpoint_round_trip_keeps_feedback_bit_identical(tmp_path: Path, name: str, buffers: list[str]) -> None:
    family = get_family(name)
    arch = family.arch_for("mnist", **({"hidden": [16, 12]} if name.endswith("_mlp") else {}))
    torch.manual_seed(18)
    model = family.build_model(arch)
    path = save_checkpoint(model, tmp_path / "m.safetensors", entrypoint=name, arch=arch)
    torch.manual_seed(19)  # a fresh model draws other feedback matrices ...
    fresh = family.build_model(arch)
    assert not torch.equal(fresh.state_dict()[buffers[0]], model.state_dict()[buffers[0]])
    load_into(fresh, path)  # ... and gets the saved ones back
    for key in buffers:
        assert torch.equal(fresh.state_dict()[key], model.state_dict()[key])
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_mlp_checkpoints_fit_the_size_limit(tmp_path: Path) -> None:
    for name in ["fa_mlp", "dfa_mlp", "drtp_mlp", "dtp_mlp", "usf_mlp"]:
        family = get_family(name)
        arch = family.arch_for("mnist")
        path = save_checkpoint(family.build_model(arch), tmp_path / f"{name}.safetensors", entrypoint=name,
                               arch=arch)
        assert path.stat().st_size <= 16 * 1024 * 1024


# --------------------------------------------------------------------------------------------- real training


SMOKE = {  # family -> rule config for one epoch on 1000 images
    "fa_mlp": {"lr": 1e-3}, "usf_mlp": {"lr": 1e-3}, "dfa_mlp": {"lr": 1e-3}, "drtp_mlp": {"lr": 3e-3},
    "dtp_mlp": {"lr": 1e-3, "inverse_lr": 1e-3, "target_lr": 0.1}, "bp_lenet": {"lr": 1e-3},
    "fa_lenet": {"lr": 1e-3}, "usf_lenet": {"lr": 1e-3}, "brsf_lenet": {"lr": 1e-3},
    "frsf_lenet": {"lr": 1e-3}, "dfa_lenet": {"lr": 1e-3},
}


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_one_epoch_on_1000_mnist_images_learns(name: str) -> None:
    from zoo.data import load_split
    from zoo.engine.fit import FitConfig, fit
    from zoo.evaluation.evaluate import top1

    root = data_root()
    train_x, train_y = load_split("mnist", "train", root, limit=1000)
    test_x, test_y = load_split("mnist", "test", root, limit=500)
    family = get_family(name)
    torch.manual_seed(0)
    model = family.build_model(family.arch_for("mnist"))
    start = top1(model, test_x, test_y)
    fit(model, train_x, train_y,
        FitConfig(epochs=1, batch_size=50, rule={**SMOKE[name], "schedule": "constant"}), progress=False)
    accuracy = top1(model, test_x, test_y)
    assert accuracy > 30.0 and accuracy > start + 20.0, (name, start, accuracy)  # chance is 10%


def test_fine_tuning_fa_keeps_feedback_fixed(tmp_path: Path) -> None:
    from zoo.data import load_split
    from zoo.engine.fit import FitConfig, fit
    from zoo.evaluation.evaluate import top1

    root = root_with("mnist", "fashion_mnist")
    family = get_family("fa_mlp")
    arch = family.arch_for("mnist")
    torch.manual_seed(0)
    model = family.build_model(arch)
    mnist_x, mnist_y = load_split("mnist", "train", root, limit=500)
    fit(model, mnist_x, mnist_y, FitConfig(epochs=1, batch_size=100), progress=False)
    path = save_checkpoint(model, tmp_path / "fa_mlp.mnist.safetensors", entrypoint="fa_mlp", arch=arch)
    saved = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("feedback")}

    torch.manual_seed(1)
    tuned = load_into(family.build_model(arch), path)
    fx, fy = load_split("fashion_mnist", "train", root, limit=1000)
    tx, ty = load_split("fashion_mnist", "test", root, limit=500)
    start = top1(tuned, tx, ty)
    fit(tuned, fx, fy, FitConfig(epochs=1, batch_size=50, rule={"lr": 1e-3, "schedule": "constant"}),
        progress=False)
    for key, value in saved.items():
        assert torch.equal(tuned.state_dict()[key], value), key
    assert not torch.equal(tuned.state_dict()["hidden.0.weight"], model.state_dict()["hidden.0.weight"])
    assert top1(tuned, tx, ty) > start + 10.0
