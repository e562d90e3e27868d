"""Attribution maps (zoo.evaluation.attributions, ``python -m zoo explain``): hand-computed maps of tiny models and
the files written for two published checkpoints on real MNIST."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from datasets import root_with
from torch import nn

from zoo.api import create_model
from zoo.errors import MissingExtraError
from zoo.evaluation.attributions import IG_STEPS, METHODS, attribute, explain_models, heatmaps

pytest.importorskip("captum", reason="the analysis extra (captum) is in requirements-extras")

IDS = ["bp_mlp.mnist", "fa_mlp.mnist"]


def linear_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear classifier of 3-channel 2x2 images, a batch of images and their labels."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    generator = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 3, 2, 2, generator=generator), torch.tensor([0, 2, 1, 2])
    return model, model[1].weight.detach(), x, y


def test_saliency_of_a_linear_model_is_the_absolute_weight_row() -> None:
    model, weight, x, y = linear_model()
    maps = attribute(model, x, y, "saliency")
    assert maps.shape == x.shape and not maps.requires_grad
    assert torch.allclose(maps, weight[y].abs().view_as(x))


def test_integrated_gradients_of_a_linear_model_is_input_times_weight() -> None:
    """Completeness: with the black image as baseline, the maps sum to logit(x) - logit(0) = x . W[y]."""
    model, weight, x, y = linear_model()
    maps = attribute(model, x, y, "integrated_gradients")
    assert maps.shape == x.shape
    assert torch.allclose(maps, x * weight[y].view_as(x), atol=1e-6)


def test_an_fa_model_is_explained_by_its_true_gradient_not_its_feedback_matrices() -> None:
    """Even in training mode (where its layers backpropagate through B), an FA net's saliency is the true one."""
    torch.manual_seed(3)
    model = create_model("fa_mlp", weights=None, in_shape=(1, 2, 2), num_classes=3, hidden=[5]).train()
    x, y = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(4)), torch.tensor([0, 1, 2, 0, 1, 2])
    hidden, head = model.hidden[0], model.head
    with torch.no_grad():
        active = ((x - 0.5) / 0.5).flatten(1) @ hidden.weight.T + hidden.bias > 0  # ImageInput: mean 0.5, std 0.5
        true = ((head.weight[y] * active) @ hidden.weight / 0.5).abs().view_as(x)
        by_rule = ((head.feedback[y] * active) @ hidden.feedback / 0.5).abs().view_as(x)
    rule_input = x.clone().requires_grad_(True)
    (rule_grad,) = torch.autograd.grad(model(rule_input).gather(1, y[:, None]).sum(), rule_input)
    assert torch.allclose(rule_grad.abs(), by_rule, atol=1e-6)  # the rule's own backward, outside attribute()
    maps = attribute(model, x, y, "saliency")
    assert torch.allclose(maps, true, atol=1e-6) and not torch.allclose(maps, by_rule, atol=1e-3)
    assert model.training and hidden.training  # the modes are restored


def test_unknown_method_names_the_accepted_ones() -> None:
    model, _, x, y = linear_model()
    with pytest.raises(ValueError, match="saliency, integrated_gradients"):
        attribute(model, x, y, "gradcam")
    with pytest.raises(ValueError, match="saliency, integrated_gradients"):
        explain_models(IDS, "unused", method="gradcam")


def test_missing_captum_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    model, _, x, y = linear_model()
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(MissingExtraError, match="pip install captum"):
        attribute(model, x, y)


def test_models_of_different_datasets_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"zoo explain compares checkpoints of one dataset; .*bp_mlp\.fashion_mnist "
                                         r"\(fashion_mnist\)"):
        explain_models(["bp_mlp.mnist", "bp_mlp.fashion_mnist"], "unused")


def test_heatmaps_sum_channels_and_scale_each_image_to_its_max() -> None:
    maps = torch.tensor([[[[1.0, -3.0]], [[1.0, 1.0]]], [[[0.0, 0.0]], [[0.0, 0.0]]]])  # [2, 2, 1, 2]
    assert torch.equal(heatmaps(maps), torch.tensor([[[0.5, 1.0]], [[0.0, 0.0]]]))


def test_explain_models_writes_the_promised_files(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from safetensors.torch import load_file

    from zoo.api import load
    from zoo.data import load_split

    root = root_with("mnist")
    paths = explain_models(IDS, tmp_path / "out", "saliency", n_images=3, data_root=root)
    assert set(paths) == {"metadata", "maps", "picture"} and all(p.parent == tmp_path / "out" for p in paths.values())
    images, labels = load_split("mnist", "test", root, limit=3)
    meta = json.loads(paths["metadata"].read_text())
    assert meta["ids"] == IDS and meta["method"] == "saliency" and meta["dataset"] == "mnist"
    assert meta["image_indices"] == [0, 1, 2] and meta["labels"] == labels.tolist()
    assert set(meta["predicted"]) == set(IDS) and all(len(p) == 3 for p in meta["predicted"].values())
    maps = load_file(paths["maps"])
    assert set(maps) == set(IDS) and all(m.shape == (3, 1, 28, 28) for m in maps.values())
    x = images.float() / 255
    assert torch.allclose(maps["fa_mlp.mnist"], attribute(load("fa_mlp.mnist"), x, labels, "saliency"))
    assert paths["picture"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_command(tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    from safetensors.torch import load_file

    from zoo.cli import main

    out = tmp_path / "explain"
    status = main(["explain", *IDS, "--out", str(out), "--method", "integrated_gradients", "--images", "2",
                   "--data-root", str(root_with("mnist"))])
    assert status == 0
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(out / f"attributions.{s}") for s in ("json", "safetensors", "png"))
    assert json.loads((out / "attributions.json").read_text())["n_steps"] == IG_STEPS
    assert all(m.shape == (2, 1, 28, 28) for m in load_file(out / "attributions.safetensors").values())
    assert main(["explain", *IDS, "--out", str(out), "--images", "0"]) == 2
    assert "positive int" in capsys.readouterr().err


def test_explain_command_accepts_exactly_the_methods() -> None:
    from zoo.cli import build_parser

    for method in METHODS:
        assert build_parser().parse_args(["explain", *IDS, "--out", "o", "--method", method]).method == method
    with pytest.raises(SystemExit):
        build_parser().parse_args(["explain", *IDS, "--out", "o", "--method", "gradcam"])
