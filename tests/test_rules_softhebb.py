"""SoftHebb (``softhebb_cnn``): the update against its formula computed by hand on a tiny layer, the fixed point of
the kernel norms, the unsupervised phase that never reads a label, the layer-greedy schedule, exact resumption,
clear errors for bad options, and the first-layer pictures of conv models."""
from __future__ import annotations

import copy
import inspect
import math

import pytest
import torch
from torch import Tensor, nn

from zoo.evaluation.filters import filter_grid, first_layer_filters
from zoo.registry import get_family
from zoo.rules.softhebb import SoftHebbNet, SoftHebbTrainer, kernel_norms, softhebb_update

FAMILY = get_family("softhebb_cnn")
TINY = {"channels": [4, 6], "kernels": [3, 3], "powers": [0.7, 1.0], "pools": ["max", "avg"], "dropout": 0.0}
TINY_RULE = {"hebbian_lr": [0.05, 0.02], "t_invert": [1.0, 0.65]}  # the defaults are the paper's, for 3 blocks


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(seed: int = 0, in_shape: tuple[int, int, int] = (1, 8, 8), **arch: object) -> SoftHebbNet:
    torch.manual_seed(seed)
    model = FAMILY.build_model(FAMILY.arch_for(in_shape=in_shape, num_classes=3, **{**TINY, **arch}))
    assert isinstance(model, SoftHebbNet)
    return model


def softhebb_trainer(model: nn.Module, steps_per_epoch: int, epochs: int, **options: object) -> SoftHebbTrainer:
    return SoftHebbTrainer(model, {**TINY_RULE, **options}, steps_per_epoch=steps_per_epoch, epochs=epochs)


def batches(n: int, shape: tuple[int, ...] = (1, 8, 8), size: int = 10) -> list[tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(7)
    return [(torch.rand(size, *shape, generator=generator), torch.randint(0, 3, (size,), generator=generator))
            for _ in range(n)]


# ------------------------------------------------------------------------------------------------- the formula

def update_by_hand(w: Tensor, x: Tensor, lr: float, t_invert: float, anti_hebbian: bool) -> Tensor:
    """The rule written out position by position: u = w.x_p, y = softmax(t u) (non-winners negated), dw = sum
    y (x_p - u w), w + lr |‖w‖ - 1|^0.5 dw / max|dw|."""
    k, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    rows = w.reshape(k, -1)
    delta = torch.zeros_like(rows)
    for b in range(x.shape[0]):
        for i in range(x.shape[2] - kh + 1):
            for j in range(x.shape[3] - kw + 1):
                patch = x[b, :, i:i + kh, j:j + kw].reshape(-1)
                u = rows @ patch
                y = torch.softmax(t_invert * u, dim=0)
                if anti_hebbian:
                    winner = int(u.argmax())
                    y = torch.where(torch.arange(k) == winner, y, -y)
                delta += y[:, None] * (patch[None, :] - u[:, None] * rows)
    delta /= delta.abs().max()
    rate = lr * ((rows.norm(dim=1) - 1).abs() + 1e-10).sqrt()
    return (rows + rate[:, None] * delta).reshape(w.shape)


@pytest.mark.parametrize("anti_hebbian", [True, False])
def test_the_update_equals_the_softhebb_formula_on_a_tiny_layer(anti_hebbian: bool) -> None:
    """2 channels, 1 input channel, 2x2 kernels, one 3x3 image and one 4x3 image (2x2 + 3x2 positions)."""
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(2, 1, 2, 2, generator=generator, dtype=torch.float64) * 3
    for x in (torch.randn(1, 1, 3, 3, generator=generator, dtype=torch.float64),
              torch.randn(2, 1, 4, 3, generator=generator, dtype=torch.float64)):
        expected = update_by_hand(w, x, lr=0.1, t_invert=0.7, anti_hebbian=anti_hebbian)
        updated = w.clone()
        u = softhebb_update(updated, x, lr=0.1, t_invert=0.7, anti_hebbian=anti_hebbian)
        assert torch.allclose(updated, expected, rtol=0, atol=1e-12)
        assert torch.allclose(u, nn.functional.conv2d(x, w), rtol=0, atol=1e-12)  # computed before the update
        assert not torch.allclose(updated, w)


def test_unit_norm_kernels_are_the_fixed_point_and_stay_put() -> None:
    generator = torch.Generator().manual_seed(1)
    w = torch.randn(3, 2, 3, 3, generator=generator, dtype=torch.float64)
    w /= kernel_norms(w).view(-1, 1, 1, 1)
    before = w.clone()
    softhebb_update(w, torch.randn(4, 2, 6, 6, generator=generator, dtype=torch.float64), lr=0.1, t_invert=1.0)
    assert (w - before).abs().max() < 1.01e-6  # rate lr * (|‖w‖ - 1| + 1e-10) ** 0.5 = 0.1 * 1e-5


@pytest.mark.parametrize("radius", [25.0, 0.2])
def test_the_kernel_norms_converge_to_the_fixed_point_on_random_data(radius: float) -> None:
    """Through the trainer (batch norm, micro-batches of 10): from norm ~25 (the paper's start) and from ~0.2,
    every kernel reaches norm 1 within 300 updates on random images."""
    model = tiny(in_shape=(1, 8, 8), channels=[4], kernels=[3], powers=[1.0], pools=["avg"], init_radius=radius)
    trainer = SoftHebbTrainer(model, {"hebbian_lr": 0.05, "t_invert": 1.0}, steps_per_epoch=300, epochs=2)
    start = kernel_norms(model.blocks[0].conv.weight).clone()
    assert (start - 1).abs().min() > 0.5
    deviations = [trainer.step(x, y) for x, y in batches(300)]
    norms = kernel_norms(model.blocks[0].conv.weight)
    assert (norms - 1).abs().max() < 1e-3
    assert deviations[-1] == pytest.approx(float((norms - 1).abs().mean()))
    assert deviations[-1] < deviations[0] / 100


# ------------------------------------------------------------------------------------------------- no labels

def test_labels_are_never_read_in_the_unsupervised_phase() -> None:
    """The Hebbian step takes no labels, and the whole unsupervised phase run with labels that any use would reject
    (out of range) gives bit-identical weights and statistics to the phase run with the true labels; the read-out
    that follows does read them."""
    assert list(inspect.signature(SoftHebbTrainer.hebbian_step).parameters) == ["self", "x"]
    garbage = torch.full((10,), 10 ** 9)
    states = []
    for use_garbage in (False, True):
        model = tiny()
        trainer = softhebb_trainer(model, steps_per_epoch=2, epochs=3)  # 2 blocks x 1 epoch, then the read-out
        for x, y in batches(4):
            trainer.step(x, garbage if use_garbage else y)
        states.append(model.state_dict())
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    with pytest.raises(IndexError, match="out of bounds"):
        trainer.step(batches(1)[0][0], garbage)


# ------------------------------------------------------------------------------------------------- the schedule

def changed_by(trainer: SoftHebbTrainer, model: nn.Module, x: Tensor, y: Tensor) -> set[str]:
    before = copy.deepcopy(model.state_dict())
    trainer.step(x, y)
    return {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}


def test_greedy_blocks_learn_one_after_another_then_the_read_out() -> None:
    model = tiny()
    trainer = softhebb_trainer(model, steps_per_epoch=1, epochs=6, hebbian_epochs=2)
    block = {f"blocks.{i}.{name}" for i in range(2) for name in ("norm.running_mean", "norm.running_var",
                                                                    "conv.weight")}
    first, second = ({k for k in block if k.startswith(f"blocks.{i}.")} for i in range(2))
    steps = [changed_by(trainer, model, x, y) for x, y in batches(6)]
    assert steps[:4] == [first, first, second, second]
    assert steps[4] == steps[5] == {"readout.weight", "readout.bias"}
    assert not any(p.requires_grad for p in model.blocks.parameters())


def test_simultaneous_order_trains_every_block_at_each_step() -> None:
    model = tiny()
    trainer = softhebb_trainer(model, steps_per_epoch=1, epochs=2, layer_order="simultaneous")
    data = batches(2)
    assert changed_by(trainer, model, *data[0]) == {
        f"blocks.{i}.{name}" for i in range(2) for name in ("norm.running_mean", "norm.running_var", "conv.weight")}
    assert changed_by(trainer, model, *data[1]) == {"readout.weight", "readout.bias"}


def test_a_run_with_only_hebbian_epochs_warns_that_the_read_out_is_untrained() -> None:
    with pytest.warns(UserWarning, match="read-out is not trained"):
        softhebb_trainer(tiny(), steps_per_epoch=1, epochs=2)


def test_resuming_from_the_saved_state_continues_exactly() -> None:
    """Model state dict + ``trainer.state_dict()`` after a step in the read-out phase (Adam's moments included)
    restore a fresh model and trainer to continue bit-identically."""
    config = {**TINY_RULE, "head_lr": 0.01}
    data = batches(6)
    model = tiny(dropout=0.5)
    trainer = SoftHebbTrainer(model, config, steps_per_epoch=2, epochs=3)
    for x, y in data[:5]:
        trainer.step(x, y)
    saved_model, saved_trainer = copy.deepcopy(model.state_dict()), copy.deepcopy(trainer.state_dict())
    torch.manual_seed(3)
    trainer.step(*data[5])
    resumed = tiny(seed=1, dropout=0.5)
    resumed.load_state_dict(saved_model)
    resumed_trainer = SoftHebbTrainer(resumed, config, steps_per_epoch=2, epochs=3)
    resumed_trainer.load_state_dict(saved_trainer)
    torch.manual_seed(3)
    resumed_trainer.step(*data[5])
    for key, value in model.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


# ------------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize(("options", "message"), [
    ({"layer_order": "sideways"}, r"unknown layer_order 'sideways'; accepted: \('greedy', 'simultaneous'\)"),
    ({"hebbian_lr": [0.1, 0.2, 0.3]}, r"hebbian_lr must be a number or a list of 2 numbers \(one per block\), "
                                      r"got \[0.1, 0.2, 0.3\]"),
    ({"t_invert": "hot"}, r"t_invert must be a number or a list of 2 numbers"),
    ({"hebbian_epochs": 0}, r"hebbian_epochs and hebbian_batch must be at least 1"),
    ({"hebbian_batch": 0}, r"hebbian_epochs and hebbian_batch must be at least 1"),
    ({"temperature": 2.0}, r"unknown rule option\(s\) \['temperature'\]; accepted: .*'t_invert'"),
])
def test_bad_rule_options_give_clear_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SoftHebbTrainer(tiny(), {**TINY_RULE, **options}, steps_per_epoch=1, epochs=3)


@pytest.mark.parametrize(("arch", "message"), [
    ({"pools": ["max", "median"]}, r"unknown pool 'median'; accepted: \('max', 'avg'\)"),
    ({"kernels": [3]}, r"channels, kernels, powers and pools need one value per block"),
    ({"channels": [1, 6]}, r"at least 2 competing channels"),
    ({"powers": [0.0, 1.0]}, r"triangle power must be positive"),
    ({"dropout": 1.0}, r"dropout=1.0 is not valid; accepted: a number in \[0, 1\)"),
    ({"in_shape": (1, 4, 4), "channels": [4, 6, 8], "kernels": [3] * 3, "powers": [1.0] * 3, "pools": ["max"] * 3},
     r"input \[1, 4, 4\] is too small for 3 SoftHebb blocks"),
])
def test_bad_architectures_give_clear_errors(arch: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny(**arch)


def test_the_trainer_refuses_other_networks() -> None:
    with pytest.raises(TypeError, match="SoftHebbTrainer trains SoftHebbNet models, not Linear"):
        SoftHebbTrainer(nn.Linear(2, 2), {}, steps_per_epoch=1, epochs=1)


# ------------------------------------------------------------------------------------------------- pictures

def test_show_filters_draws_the_kernels_of_a_first_conv_layer() -> None:
    model = tiny(in_shape=(3, 8, 8))
    name, kernels = first_layer_filters(model)
    assert name == "blocks.0.conv" and kernels.shape == (4, 3, 3, 3)
    rgb = filter_grid(model, n=4)                              # 2 x 2 tiles of 3x3 colour kernels, 1-pixel gaps
    assert rgb.shape == (7, 7, 3)
    w = model.blocks[0].conv.weight[3].double()
    tile = torch.from_numpy(rgb[4:7, 4:7].copy()).permute(2, 0, 1)
    assert torch.allclose(tile, 0.5 + 0.5 * w / w.abs().max())
    grey = filter_grid(tiny(), n=4, cols=4)                    # one channel: one row of four 3x3 tiles
    w = tiny().blocks[0].conv.weight[1, 0].double()
    assert grey.shape == (3, 15) and math.isnan(grey[0, 3])
    assert torch.allclose(torch.from_numpy(grey[:, 4:7].copy()), w / w.abs().max())
    lenet = get_family("bp_lenet").build_model(get_family("bp_lenet").arch_for("mnist"))
    assert first_layer_filters(lenet)[0] == "conv1"            # any conv model's first layer, 5x5 kernels
    assert filter_grid(lenet, n=20).shape == (23, 29)
