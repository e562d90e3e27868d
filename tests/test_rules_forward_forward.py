"""Forward-Forward (``ff_mlp``): the goodness objective and the logits against their formulas computed by hand on
tiny networks, no gradient across a layer boundary (checked with hooks), no label read at inference, clear errors
for bad options, and a short real training run on MNIST."""
from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import torch
from datasets import root_with
from torch import Tensor, nn

from zoo.registry import get_family
from zoo.rules.forward_forward import FFNet, FFTrainer, ff_loss, hardest_wrong_labels, random_wrong_labels

FAMILY = get_family("ff_mlp")
MEAN, STD = 0.5, 0.5  # what arch_for gives an explicit input shape


def tiny(hidden: list[int], **arch: Any) -> FFNet:
    """An untrained ``ff_mlp`` on 4 x 4 single-channel images with 3 classes."""
    model = FAMILY.build_model(FAMILY.arch_for(in_shape=(1, 4, 4), num_classes=3, hidden=hidden, **arch))
    assert isinstance(model, FFNet)
    return model


def by_hand_embedding(x: Tensor, label: int, embedding: str, scale: float, classes: int = 3) -> Tensor:
    """``e(v, label)`` written out: the standardised flat image with ``scale * onehot`` over its first values or
    after them."""
    v = ((x - MEAN) / STD).flatten(1)
    onehot = torch.zeros(v.shape[0], classes)
    onehot[:, label] = scale
    return torch.cat([onehot, v[:, classes:]], 1) if embedding == "overwrite" else torch.cat([v, onehot], 1)


def by_hand_goodness(model: FFNet, e: Tensor) -> list[Tensor]:
    """Each layer's ``sum_j relu(W n(h) + b)_j^2`` with ``n(h) = h / sqrt(mean(h^2) + 1e-12)``, one loop step per
    layer."""
    out, h = [], e
    for layer in model.layers:
        assert isinstance(layer, nn.Linear)
        normalised = h / (h.pow(2).mean(1, keepdim=True) + 1e-12).sqrt()
        h = torch.clamp(normalised @ layer.weight.t() + layer.bias, min=0.0)
        out.append((h * h).sum(1))
    return out


@pytest.mark.parametrize("embedding", ["append", "overwrite"])
@pytest.mark.parametrize("skip_first", [True, False])
def test_logits_are_each_labels_goodness_summed_over_the_layers(embedding: str, skip_first: bool) -> None:
    torch.manual_seed(0)
    model = tiny([5, 4, 3], label_embedding=embedding, label_scale=1.5, skip_first=skip_first)
    assert model.layers[0].in_features == (19 if embedding == "append" else 16)
    x = torch.rand(6, 1, 4, 4)
    read = slice(1 if skip_first else 0, None)  # Hinton's skip of the first layer, or every layer
    units = sum([5, 4, 3][read])  # per unit read
    expected = torch.stack([torch.stack(by_hand_goodness(model, by_hand_embedding(x, k, embedding, 1.5))[read]).sum(0)
                            for k in range(3)], 1) / units
    for mode in (True, False):
        logits = model.train(mode)(x)
        assert logits.shape == (6, 3)
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def softplus(z: float) -> float:
    return math.log(1.0 + math.exp(z))


@pytest.mark.parametrize("loss", ["threshold", "symmetric"])
def test_the_goodness_loss_of_a_tiny_layer_equals_its_formula(loss: str) -> None:
    """Two layers of 3 and 2 units, hard negatives, alpha 0.7, threshold 0.5, every term written out:
    ``threshold``: ``L_l = mean(softplus(-alpha (g+ - theta_l)) + softplus(alpha (g- - theta_l)))`` with
    ``theta_l = 0.5 * width_l``; ``symmetric``: ``L_l = mean(softplus(-alpha (g+ - g-)))``."""
    torch.manual_seed(1)
    model = tiny([3, 2], label_scale=2.0)
    trainer = FFTrainer(model, {"loss": loss, "alpha": 0.7, "threshold": 0.5}, steps_per_epoch=1, epochs=1)
    x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        per_label = [by_hand_goodness(model, by_hand_embedding(x, k, "append", 2.0)) for k in range(3)]
    logits = [[float(per_label[k][0][i] + per_label[k][1][i]) for k in range(3)] for i in range(5)]
    wrong = [max((k for k in range(3) if k != int(y[i])), key=lambda k: logits[i][k]) for i in range(5)]
    losses = trainer.layer_losses(x, y)
    for layer, width in ((0, 3), (1, 2)):
        theta = 0.5 * width
        pos = [float(per_label[int(y[i])][layer][i]) for i in range(5)]
        neg = [float(per_label[wrong[i]][layer][i]) for i in range(5)]
        terms = ([softplus(-0.7 * (p - theta)) + softplus(0.7 * (n - theta)) for p, n in zip(pos, neg)]
                 if loss == "threshold" else [softplus(-0.7 * (p - n)) for p, n in zip(pos, neg)])
        assert float(losses[layer].detach()) == pytest.approx(sum(terms) / 5, rel=1e-5)
    assert float(ff_loss(torch.tensor([3.0]), torch.tensor([1.0]), loss, 1.0, 2.0)) == pytest.approx(
        2 * softplus(-1.0) if loss == "threshold" else softplus(-2.0))


def test_no_gradient_crosses_a_layer_boundary_in_a_training_step() -> None:
    """Hooks on every layer during one training step: no layer's input carries a graph (so no gradient can leave a
    layer downwards), no layer passes a gradient to its input, and the gradient reaching each layer's output is the
    gradient of that layer's own loss alone."""
    torch.manual_seed(2)
    model = tiny([6, 5, 4]).train()
    trainer = FFTrainer(model, {}, steps_per_epoch=1, epochs=1)
    x, y = torch.rand(8, 1, 4, 4), torch.arange(8) % 3
    inputs_with_graph: list[int] = []
    input_grads: list[Any] = []
    output_grads: dict[int, list[Tensor]] = {i: [] for i in range(3)}

    def watch(index: int, layer: nn.Module) -> list[Any]:
        def before(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
            if args[0].requires_grad:
                inputs_with_graph.append(index)

        def after(_m: nn.Module, _args: tuple[Tensor, ...], out: Tensor) -> None:
            if out.requires_grad:
                out.register_hook(lambda g: output_grads[index].append(g.clone()))

        def backward(_m: nn.Module, grad_input: tuple[Any, ...], _grad_output: tuple[Any, ...]) -> None:
            input_grads.extend(grad_input)

        return [layer.register_forward_pre_hook(before), layer.register_forward_hook(after),
                layer.register_full_backward_hook(backward)]

    handles = [h for i, layer in enumerate(model.layers) for h in watch(i, layer)]
    try:
        with pytest.warns(UserWarning, match="no inputs require gradients"):  # torch notices it too
            trainer.step(x, y)
    finally:
        for handle in handles:
            handle.remove()
    assert inputs_with_graph == [] and input_grads and all(g is None for g in input_grads)
    assert all(len(grads) == 1 for grads in output_grads.values())

    losses = trainer.layer_losses(x, y)  # same batch, weights after the step: each loss reaches its own layer only
    for k, loss in enumerate(losses):
        for index, layer in enumerate(model.layers):
            grads = torch.autograd.grad(loss, list(layer.parameters()), retain_graph=True, allow_unused=True)
            assert all((g is not None) == (index == k) for g in grads), (k, index)


def test_eval_mode_reads_no_labels() -> None:
    """``forward`` takes images only, and each image's logits are the same alone, in any batch, in either mode, and
    after training steps on any labels left nothing behind in the model but its weights."""
    assert list(inspect.signature(FFNet.forward).parameters) == ["self", "x"]
    torch.manual_seed(3)
    model = tiny([5, 4])
    x = torch.rand(6, 1, 4, 4)
    FFTrainer(model, {"lr": 0.01}, steps_per_epoch=1, epochs=1).step(x, torch.tensor([2, 2, 2, 0, 0, 0]))
    logits = model.eval()(x)
    torch.testing.assert_close(model(x[2:3]), logits[2:3])
    torch.testing.assert_close(model(x.flip(0)), logits.flip(0))
    torch.testing.assert_close(model.train()(x), logits)
    fresh = tiny([5, 4])
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh.eval()(x), logits)


def test_negative_labels_are_wrong_and_hard_ones_the_most_excited() -> None:
    logits = torch.tensor([[5.0, 4.0, 1.0], [0.0, 2.0, 3.0], [1.0, 1.5, 9.0]])
    assert hardest_wrong_labels(logits, torch.tensor([0, 2, 1])).tolist() == [1, 1, 2]
    torch.manual_seed(4)
    y = torch.arange(3000) % 10
    drawn = random_wrong_labels(y, 10)
    assert not (drawn == y).any()
    counts = torch.bincount((drawn - y) % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 250  # every wrong label, about 1/9 each


def test_bad_options_give_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"label_embedding 'first_pixels'; accepted: \('overwrite', 'append'\)"):
        tiny([4, 4], label_embedding="first_pixels")
    with pytest.raises(ValueError, match="skip_first=True leaves no layer"):
        tiny([4], skip_first=True)
    with pytest.raises(ValueError, match="label_scale must be positive"):
        tiny([4, 4], label_scale=0.0)
    with pytest.raises(ValueError, match="at least one positive layer width"):
        tiny([], skip_first=False)
    model = tiny([4, 4])
    with pytest.raises(ValueError, match=r"unknown negatives 'hardest'; accepted: \('hard', 'random'\)"):
        FFTrainer(model, {"negatives": "hardest"}, steps_per_epoch=1, epochs=1)
    with pytest.raises(ValueError, match=r"unknown loss 'softmax'; accepted: \('threshold', 'symmetric'\)"):
        FFTrainer(model, {"loss": "softmax"}, steps_per_epoch=1, epochs=1)
    with pytest.raises(ValueError, match=r"unknown loss 'softmax'; accepted"):
        ff_loss(torch.ones(2), torch.zeros(2), "softmax", 1.0, 1.0)
    for key in ("threshold", "alpha"):
        with pytest.raises(ValueError, match=f"{key} must be positive, got 0"):
            FFTrainer(model, {key: 0}, steps_per_epoch=1, epochs=1)
    with pytest.raises(ValueError, match=r"unknown rule option\(s\) \['theta'\]; accepted: .*'threshold'"):
        FFTrainer(model, {"theta": 2.0}, steps_per_epoch=1, epochs=1)
    with pytest.raises(TypeError, match="FFTrainer trains an FFNet, not MLP"):
        FFTrainer(get_family("bp_mlp").build_model(get_family("bp_mlp").arch_for("mnist")), {}, 1, 1)


@pytest.mark.parametrize("negatives", ["hard", "random"])
def test_one_epoch_on_2000_mnist_images_learns(negatives: str) -> None:
    from zoo.data import load_split
    from zoo.engine.fit import FitConfig, fit
    from zoo.evaluation.evaluate import top1

    root = root_with("mnist")
    train_x, train_y = load_split("mnist", "train", root, limit=2000)
    test_x, test_y = load_split("mnist", "test", root, limit=500)
    torch.manual_seed(0)
    model = FAMILY.build_model(FAMILY.arch_for("mnist", hidden=[200, 200]))
    start = top1(model, test_x, test_y)
    fit(model, train_x, train_y, FitConfig(epochs=1, batch_size=50, rule={"negatives": negatives}), progress=False)
    accuracy = top1(model, test_x, test_y)
    assert accuracy > 60.0 and accuracy > start + 40.0, (negatives, start, accuracy)  # chance is 10%
