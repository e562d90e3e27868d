"""Kolen-Pollack learning: the error travels through the learned B, B receives W's gradient, and weight decay brings
B to W at the rate the paper's update gives."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from zoo.evaluation.alignment import feedback_angles, layer_weights
from zoo.registry import get_family
from zoo.rules.kolen_pollack import KolenPollackConv2d, KolenPollackLinear, KolenPollackTrainer


def test_linear_sends_the_error_through_b_and_gives_b_the_gradient_of_w() -> None:
    torch.manual_seed(0)
    layer = KolenPollackLinear(5, 3).train()
    x = torch.randn(4, 5, requires_grad=True)
    grad_out = torch.randn(4, 3)
    layer(x).backward(grad_out)
    assert torch.allclose(x.grad, grad_out @ layer.feedback.detach())
    assert not torch.allclose(x.grad, grad_out @ layer.weight.detach())
    assert torch.allclose(layer.weight.grad, grad_out.t() @ x.detach())
    assert torch.equal(layer.feedback.grad, layer.weight.grad)
    assert torch.allclose(layer.bias.grad, grad_out.sum(0))


def test_conv_sends_the_error_through_b_and_gives_b_the_gradient_of_w() -> None:
    torch.manual_seed(0)
    layer = KolenPollackConv2d(2, 3, 3, padding=1).train()
    x = torch.randn(2, 2, 6, 6, requires_grad=True)
    grad_out = torch.randn(2, 3, 6, 6)
    layer(x).backward(grad_out)
    through_b = torch.nn.grad.conv2d_input(x.shape, layer.feedback.detach(), grad_out, padding=1)
    exact_w = torch.nn.grad.conv2d_weight(x.detach(), layer.weight.shape, grad_out, padding=1)
    assert torch.allclose(x.grad, through_b, atol=1e-5)
    assert torch.allclose(layer.weight.grad, exact_w, atol=1e-4)
    assert torch.equal(layer.feedback.grad, layer.weight.grad)


def test_eval_mode_is_a_plain_layer_whose_feedback_takes_no_part() -> None:
    layer = KolenPollackLinear(5, 3).eval()
    x = torch.randn(4, 5, requires_grad=True)
    layer(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones(4, 3) @ layer.weight.detach())
    assert layer.feedback.grad is None


def test_weight_decay_shrinks_w_minus_b_by_one_minus_lr_wd_per_sgd_step() -> None:
    family = get_family("kp_mlp")
    torch.manual_seed(0)
    model = family.build_model(family.arch_for("mnist", hidden=[32])).train()
    lr, wd, steps = 0.1, 0.05, 5
    trainer = KolenPollackTrainer(model, {"optimizer": "sgd", "lr": lr, "momentum": 0.0, "weight_decay": wd,
                                          "schedule": "constant"}, steps_per_epoch=steps, epochs=1)
    before = {name: (m.weight - m.feedback).detach().clone() for name, m in model.named_modules()
              if isinstance(m, KolenPollackLinear)}
    angles = feedback_angles(model)
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    for _ in range(steps):
        trainer.step(x, y)
    for name, m in model.named_modules():
        if isinstance(m, KolenPollackLinear):
            assert torch.allclose(m.weight - m.feedback, before[name] * (1 - lr * wd) ** steps, atol=1e-6), name
    after = feedback_angles(model)
    assert set(after) == {"hidden.0.weight", "head.weight"}
    assert all(after[k] < angles[k] for k in after)  # B turns towards W


def test_zero_weight_decay_is_refused_with_the_reason() -> None:
    family = get_family("kp_lenet")
    model = family.build_model(family.arch_for("mnist"))
    with pytest.raises(ValueError, match=r"weight_decay > 0 .*converge"):
        KolenPollackTrainer(model, {"weight_decay": 0.0}, steps_per_epoch=1, epochs=1)


def test_update_alignment_compares_forward_weights_only() -> None:
    family = get_family("kp_lenet")
    torch.manual_seed(0)
    model = family.build_model(family.arch_for("mnist"))
    assert not any(name.endswith("feedback") for name in layer_weights(model))
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    angles = family.alignment(model, x, y)
    assert set(angles) == {"conv1.weight", "conv2.weight", "fc.weight", "head.weight"}
    assert angles["head.weight"] == 0.0 and angles["conv1.weight"] > 10.0
    for m in model.modules():  # with B = W the rule is backprop
        if isinstance(m, (KolenPollackLinear, KolenPollackConv2d)):
            m.feedback.data.copy_(m.weight.data)
    assert all(v < 1e-3 for v in family.alignment(model, x, y).values())
    assert all(v < 1e-3 for v in feedback_angles(model).values())
    assert F.cross_entropy(model(x), y).isfinite()
