"""Representation comparison (zoo.evaluation.representations, ``python -m zoo compare``): linear CKA's defining
properties, layer capture checked by hand on a tiny MLP, and the files written for tiny models and for published
checkpoints on real MNIST test images, with the untrained baseline."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from datasets import root_with
from safetensors import safe_open
from torch import nn

from zoo.data import load_split
from zoo.data.catalog import dataset_info
from zoo.errors import MissingExtraError
from zoo.evaluation import representations
from zoo.evaluation.representations import (
    FILES,
    compare_checkpoints,
    compare_models,
    layer_activations,
    linear_cka,
    plot_rdms,
    untrained_baselines,
)
from zoo.registry import get_family

pytest.importorskip("rsatoolbox", reason="the analysis extra (rsatoolbox) is in requirements-extras")
pytest.importorskip("sklearn", reason="the analysis extra (scikit-learn) is in requirements-extras")
pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is in requirements-extras")

IDS = ["bp_mlp.mnist", "fa_mlp.mnist"]
PNG = b"\x89PNG\r\n\x1a\n"


def tiny(name: str, seed: int, **arch: object) -> nn.Module:
    """An untrained MNIST model of the family ``name`` with small layers."""
    torch.manual_seed(seed)
    family = get_family(name)
    return family.build_model(family.arch_for("mnist", **arch), dataset="mnist").eval()


def mnist(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` MNIST test images as floats in [0, 1], and their labels."""
    images, labels = load_split("mnist", "test", limit=n)
    return images.float() / 255, labels


def features(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_linear_cka_of_a_representation_with_itself_is_one() -> None:
    x = features(50, 7, seed=0)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_linear_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling() -> None:
    x, y = features(60, 8, seed=1), features(60, 5, seed=2) + features(60, 8, seed=1)[:, :5]
    q, _ = torch.linalg.qr(features(8, 8, seed=3))
    reference = linear_cka(x, y)
    assert 0.1 < reference < 0.9
    assert linear_cka(3.7 * x @ q, y) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(x, 0.01 * y) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(x + 5.0, y) == pytest.approx(reference, abs=1e-12)  # column-centred: offsets do not count


def test_linear_cka_of_independent_random_features_is_small() -> None:
    """For independent features E[CKA] is about sqrt(p q) / n (here 0.0025)."""
    assert linear_cka(features(2000, 5, seed=4), features(2000, 5, seed=5)) < 0.02
    with pytest.raises(ValueError, match="same inputs; got 3 and 4 rows"):
        linear_cka(features(3, 2, seed=6), features(4, 2, seed=6))


def test_default_layers_are_the_weight_layers_then_the_output() -> None:
    model = tiny("bp_mlp", 0, hidden=[16, 8])
    x, _ = mnist(6)
    acts = layer_activations(model, x)
    assert list(acts) == ["hidden.0", "hidden.1", "output"]  # the head's output is the model's: named "output"
    assert [a.shape for a in acts.values()] == [(6, 16), (6, 8), (6, 10)]
    first = model.hidden[0]
    by_hand = ((x - 0.1307) / 0.3081).flatten(1) @ first.weight.T + first.bias  # ImageInput, then hidden.0
    assert torch.allclose(acts["hidden.0"], by_hand.detach(), atol=1e-4)
    assert torch.allclose(acts["output"], model(x))
    assert list(layer_activations(model, x, ["head", "hidden.0"])) == ["head", "hidden.0"]


def test_unknown_or_unusable_layers_name_the_accepted_ones() -> None:
    model = tiny("bp_mlp", 0, hidden=[16])
    x, labels = mnist(6)
    accepted = "accepted: input, hidden, hidden.0, head, act, drop, output"
    with pytest.raises(ValueError, match=f"unknown layer\\(s\\) \\['conv1'\\] of MLP; {accepted}"):
        layer_activations(model, x, ["conv1"])
    with pytest.raises(ValueError, match=f"\\['hidden'\\] of MLP do not run in the forward pass; {accepted}"):
        layer_activations(model, x, ["hidden"])  # a ModuleList is never called
    with pytest.raises(ValueError, match="'act' runs more than once per forward pass"):
        layer_activations(tiny("bp_mlp", 0, hidden=[16, 8]), x, ["act"])  # one ReLU module for both layers
    with pytest.raises(ValueError, match=f"^bp: unknown layer\\(s\\) \\['conv1'\\] of MLP; {accepted}"):
        compare_models({"bp": model}, x, labels, "unused", layer="conv1")


def test_compare_models_writes_the_promised_files(tmp_path: Path) -> None:
    x, labels = mnist(40)
    models = {"bp": tiny("bp_mlp", 0, hidden=[16, 12]), "fa": tiny("fa_mlp", 1, hidden=[8])}
    paths = compare_models(models, x, labels, tmp_path / "out")
    assert paths == {kind: tmp_path / "out" / name for kind, name in FILES.items()}
    assert all(paths[kind].read_bytes()[:8] == PNG for kind in ("rdms_picture", "cka_picture", "tsne_picture"))
    layers = {"bp": ["hidden.0", "hidden.1", "output"], "fa": ["hidden.0", "output"]}

    cka = json.loads(paths["cka"].read_text())
    assert cka["labels"] == [[m, layer] for m, names in layers.items() for layer in names]
    matrix = np.array(cka["matrix"])
    assert matrix.shape == (5, 5) and np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1.0)
    assert ((matrix > 0) & (matrix < 1 + 1e-9)).all()
    order = torch.argsort(labels, stable=True)  # images are ordered by class
    ordered = labels[order].tolist()
    acts = layer_activations(models["fa"], x[order])
    assert matrix[0, 3] == pytest.approx(linear_cka(layer_activations(models["bp"], x[order])["hidden.0"],
                                                    acts["hidden.0"]))

    with safe_open(paths["rdms"], "pt") as handle:  # one [N, N] matrix per model/layer, method and labels beside
        metadata = handle.metadata()
        rdms = {key: handle.get_tensor(key).numpy() for key in handle.keys()}
    assert metadata["method"] == "correlation" and json.loads(metadata["labels"]) == ordered
    assert sorted(rdms) == sorted(f"{m}/{layer}" for m, names in layers.items() for layer in names)
    for rdm in rdms.values():
        assert rdm.shape == (40, 40) and np.allclose(rdm, rdm.T) and np.allclose(np.diag(rdm), 0.0, atol=1e-4)
    out = acts["output"].double()
    expected = 1 - np.corrcoef(out.numpy())  # correlation distance between the images' output patterns
    assert np.allclose(rdms["fa/output"], expected, atol=2e-4)

    tsne = json.loads(paths["tsne"].read_text())
    assert tsne["labels"] == ordered and tsne["random_state"] == 0 and tsne["perplexity"] == 13.0
    assert {m: t["layer"] for m, t in tsne["maps"].items()} == {"bp": "hidden.1", "fa": "hidden.0"}
    assert all(np.array(t["coordinates"]).shape == (40, 2) for t in tsne["maps"].values())


def test_compare_checkpoints_adds_one_untrained_model_per_architecture(tmp_path: Path) -> None:
    paths = compare_checkpoints(IDS, tmp_path, layer="output", n_images=20)
    pairs = json.loads(paths["cka"].read_text())["labels"]
    assert list(dict.fromkeys(m for m, _ in pairs)) == [*IDS, "bp_mlp.untrained"]  # dropout alone: one MLP
    assert {t["layer"] for t in json.loads(paths["tsne"].read_text())["maps"].values()} == {"output"}
    baselines = untrained_baselines(["bp_lenet.mnist", *IDS, "krotov_fc.mnist"])
    assert list(baselines) == ["bp_lenet.untrained", "bp_mlp.untrained", "krotov_fc.untrained"]
    seeded = tiny("bp_mlp", 0, dropout=0.2)
    assert all(torch.equal(a, b) for a, b in zip(baselines["bp_mlp.untrained"].state_dict().values(),
                                                  seeded.state_dict().values()))
    assert not baselines["bp_mlp.untrained"].training
    with pytest.raises(ValueError, match=r"one dataset; .*bp_mlp\.fashion_mnist \(fashion_mnist\)"):
        compare_checkpoints(["bp_mlp.mnist", "bp_mlp.fashion_mnist"], tmp_path)


def test_rdm_pictures_have_a_named_colour_bar_and_the_class_blocks_on_both_axes() -> None:
    """Issue 32 (pictures): the RDMs had neither colour bar nor axes. Every panel now has its colour bar, labelled
    with the quantity that the RDM holds (1 - Pearson r, see the test above), and the class blocks of the
    class-ordered images named at their centres, their boundaries ticked, along both axes."""
    import matplotlib.pyplot as plt

    classes = dataset_info("fashion_mnist").classes
    labels = torch.tensor([0, 0, 0, 2, 2, 5, 5, 5, 5])
    rdm = np.random.default_rng(0).random((9, 9))
    fig = plot_rdms({"a": {"hidden.0": rdm, "output": rdm}, "b": {"output": rdm}}, labels, classes, "9 images")
    panels = [ax for ax in fig.axes if ax.images and ax.images[0].colorbar is not None]
    assert len(panels) == 3 and [ax.axison for ax in fig.axes[:4]] == [True, True, True, False]  # b has one layer
    for ax in panels:
        assert ax.images[0].colorbar.ax.get_ylabel() == "1 − Pearson r"
        for axis in (ax.xaxis, ax.yaxis):
            assert [t.get_text() for t in axis.get_ticklabels()] == ["T-shirt/top", "Pullover", "Sandal"]
            assert list(axis.get_ticklocs()) == [1.0, 3.5, 6.5]                 # the centres of the class blocks
            assert list(axis.get_ticklocs(minor=True)) == [2.5, 4.5]           # and the boundaries between them
    assert "1 − Pearson r" in fig.get_suptitle() and "of 9 images, ordered by class" in fig.get_suptitle()
    plt.close(fig)


def test_compare_pictures_say_which_images_they_show_and_name_the_classes(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    """Issue 32 (pictures): the t-SNE map did not say which images it showed. ``python -m zoo compare`` draws the
    first N test images of the checkpoints' dataset, and every picture now says so, with the dataset's class
    names on the RDMs' axes and the t-SNE colour bar."""
    drawn: dict[str, Any] = {}
    save = representations._save

    def keep(fig: Any, out: Path) -> Path:
        drawn[out.name] = fig
        return save(fig, out)

    monkeypatch.setattr(representations, "_save", keep)
    ids = ["bp_mlp.fashion_mnist", "fa_mlp.fashion_mnist"]
    paths = compare_checkpoints(ids, tmp_path, n_images=12, data_root=root_with("fashion_mnist"))
    assert sorted(drawn) == sorted(path.name for kind, path in paths.items() if kind.endswith("_picture"))
    shown = "the first 12 Fashion-MNIST test images"
    tsne = drawn["tsne.png"]
    assert tsne.get_suptitle().startswith(f"t-SNE of {shown}, coloured by class (perplexity 3.67, seed 0)")
    bar = next(ax for ax in tsne.axes if ax.get_label() == "<colorbar>")
    assert [t.get_text() for t in bar.get_yticklabels()] == list(dataset_info("fashion_mnist").classes)
    assert f"of {shown}, ordered by class" in drawn["rdms.png"].get_suptitle()
    _, labels = load_split("fashion_mnist", "test", root_with("fashion_mnist"), limit=12)
    present = [dataset_info("fashion_mnist").classes[c] for c in sorted(set(labels.tolist()))]
    first = next(ax for ax in drawn["rdms.png"].axes if ax.images)
    assert [t.get_text() for t in first.get_xticklabels()] == present
    assert drawn["cka.png"].axes[0].get_title() == f"Linear CKA on {shown}"


def test_missing_extras_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    x, labels = mnist(8)
    models = {"bp": tiny("bp_mlp", 0, hidden=[4])}
    for module in ("rsatoolbox", "rsatoolbox.data", "rsatoolbox.rdm"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match="pip install rsatoolbox "):
        compare_models(models, x, labels, tmp_path)
    monkeypatch.undo()
    for module in ("sklearn", "sklearn.manifold"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match="pip install scikit-learn "):
        compare_models(models, x, labels, tmp_path)


def test_compare_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zoo.cli import main

    out = tmp_path / "compare"
    root = str(root_with("mnist"))
    assert main(["compare", "bp_mlp.mnist", "bp_lenet.mnist", "--out", str(out), "--images", "12",
                 "--data-root", root]) == 0
    assert sorted(capsys.readouterr().out.split()) == sorted(str(out / name) for name in FILES.values())
    matrix = np.array(json.loads((out / "cka.json").read_text())["matrix"])
    assert matrix.shape == (14, 14)  # (3 + 4 layers) x (trained + untrained)
    assert main(["compare", "bp_mlp.mnist", "bp_lenet.mnist", "--out", str(out), "--layer", "conv1",
                 "--data-root", root, "--images", "12"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bp_mlp.mnist: unknown layer(s) ['conv1'] of MLP; accepted: input, hidden")
    assert main(["compare", "bp_mlp.mnist", "--out", str(out), "--images", "2"]) == 2
    assert "an int >= 5" in capsys.readouterr().err
