"""Representations of several checkpoints on the same test images, compared layer by layer (the ``analysis`` extra).

    python -m zoo compare bp_mlp.mnist fa_mlp.mnist --out compare/ [--layer hidden.1] [--images 500]

    from zoo.evaluation.representations import compare_models, layer_activations, linear_cka
    acts = layer_activations(model, images)          # {"hidden.0": [N, D], ..., "output": [N, classes]}
    linear_cka(acts["hidden.0"], acts["hidden.1"])   # a float in [0, 1]

Three views, each written as data (safetensors for the RDMs, JSON for the others) + PNG:

``rdms``   one representational dissimilarity matrix per (model, layer): ``1 - Pearson correlation`` between the
           activation patterns of every pair of images (rsatoolbox's ``calc_rdm``, method ``correlation``);
``cka``    linear CKA (Kornblith et al., 2019) between every pair of (model, layer);
``tsne``   a 2-D t-SNE map (scikit-learn, fixed seed) of one layer per model, coloured by class.

Every picture says which images it shows (``python -m zoo compare``: the first N test images of the dataset, ordered
by class); the RDMs have a colour bar of ``1 - Pearson r`` each and their class blocks marked on both axes.

Layers are named as ``model.named_modules()`` names them; ``"output"`` is the model's output. A model's default
layers are its leaf modules that hold a weight (linear, convolutional, Hebbian layers) in the order the forward pass
runs them, then the output (which replaces the last layer when that layer's output is the model's). Images are
ordered by class, so the RDMs show class blocks. :func:`compare_checkpoints` always adds an untrained model of each
architecture compared, built from the same seed: similarity between trained networks means little without the
similarity that the architecture alone gives.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from zoo.evaluation.extras import optional_import, require
from zoo.evaluation.output import output_folder
from zoo.evaluation.plotting import pyplot
from zoo.evaluation.side_by_side import distinct_models, shared_test_images

OUTPUT = "output"
RDM_METHOD = "correlation"
RDM_QUANTITY = "1 − Pearson r"  # what rsatoolbox's "correlation" RDM holds, for the colour bars
TSNE_SEED = 0
TSNE_PERPLEXITY = 30.0
BASELINE_SEED = 0
TRAINING_ONLY_KEYS = ("dropout",)  # arch keys that leave the eval-mode network unchanged
DEFAULT_IMAGES = 500  # t-SNE and the images x images RDMs grow quadratically with the number of images
MIN_IMAGES = 5
PACKAGES = ("rsatoolbox", "scikit-learn", "matplotlib")  # RDMs, t-SNE, the pictures
PURPOSE = "comparing representations (python -m zoo compare)"
FILES = {"rdms": "rdms.safetensors", "rdms_picture": "rdms.png", "cka": "cka.json", "cka_picture": "cka.png",
         "tsne": "tsne.json", "tsne_picture": "tsne.png"}


def _holds_weight(module: nn.Module) -> bool:
    return next(module.children(), None) is None and isinstance(getattr(module, "weight", None), nn.Parameter)


def _capture(model: nn.Module, images: Tensor, names: Sequence[str]) -> tuple[dict[str, Tensor], Tensor]:
    """The outputs of the modules ``names`` (in the order they ran, modules that never ran left out) and the
    model's output, from one forward pass; :class:`ValueError` for a module that runs more than once."""
    modules = dict(model.named_modules())
    captured: dict[str, Tensor] = {}

    def hook(name: str) -> Any:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if name in captured:
                raise ValueError(f"module {name!r} runs more than once per forward pass: its output is not one "
                                 "layer's representation; pick another layer")
            captured[name] = output
        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in names]
    try:
        with torch.no_grad():
            output = model(images)
    finally:
        for handle in handles:
            handle.remove()
    return captured, output


def layer_activations(model: nn.Module, images: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
    """Each layer's output on float images ``[N, C, H, W]`` in ``[0, 1]``, flattened per image to ``[N, D]``
    (the model is put in eval mode).

    ``layers`` are ``model.named_modules()`` names or ``"output"`` (the model's output); the default is the
    model's weight-holding leaf modules that run in the forward pass, in that order, then ``"output"`` (a layer
    whose output is the model's own appears as ``"output"`` only). An unknown name, or a module that does not run
    exactly once per forward pass, raises :class:`ValueError` naming the accepted layers.
    """
    modules = dict(model.named_modules())
    accepted = [name for name in modules if name] + [OUTPUT]
    unknown = [name for name in layers or () if name not in accepted]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown} of {type(model).__name__}; accepted: {', '.join(accepted)}")
    candidates = ([name for name, module in modules.items() if _holds_weight(module)] if layers is None
                  else [name for name in layers if name != OUTPUT])
    captured, output = _capture(model.eval(), images, candidates)
    if layers is None:
        names = [name for name, out in captured.items() if out is not output] + [OUTPUT]
    else:
        silent = [name for name in candidates if name not in captured]
        if silent:
            raise ValueError(f"layer(s) {silent} of {type(model).__name__} do not run in the forward pass; "
                             f"accepted: {', '.join(accepted)}")
        names = list(layers)
    captured[OUTPUT] = output
    return {name: captured[name].detach().flatten(1).float() for name in names}


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear centred kernel alignment between two representations of the same ``n`` inputs, ``x`` ``[n, p]`` and
    ``y`` ``[n, q]`` (Kornblith, Norouzi, Lee & Hinton, Similarity of Neural Network Representations Revisited,
    ICML 2019): with column-centred ``X`` and ``Y``,

        CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

    the HSIC ratio of the linear kernels. It is 1 for ``x`` against itself, invariant to orthogonal transforms and
    isotropic scaling of either side. Computed in float64 through the ``n x n`` Gram matrices (``||Y^T X||_F^2 =
    <X X^T, Y Y^T>_F``, ``||X^T X||_F = ||X X^T||_F``), whose size does not grow with the layer widths.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA compares representations of the same inputs; got {x.shape[0]} and {y.shape[0]} rows")
    return _gram_cka(_centred_gram(x), _centred_gram(y))


def _centred_gram(z: Tensor) -> Tensor:
    centred = z.detach().flatten(1).double()
    centred = centred - centred.mean(0, keepdim=True)
    return centred @ centred.T


def _gram_cka(gram_x: Tensor, gram_y: Tensor) -> float:
    return float((gram_x * gram_y).sum() / (gram_x.norm() * gram_y.norm()))


def cka_matrix(activations: dict[str, dict[str, Tensor]]) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The (model, layer) pairs of ``{model: {layer: [N, D]}}`` and the symmetric matrix of their linear CKA."""
    pairs = [(model, layer) for model, layers in activations.items() for layer in layers]
    grams = [_centred_gram(activations[model][layer]) for model, layer in pairs]
    matrix = np.empty((len(pairs), len(pairs)))
    for i in range(len(pairs)):
        for j in range(i, len(pairs)):
            matrix[i, j] = matrix[j, i] = _gram_cka(grams[i], grams[j])
    return pairs, matrix


def dissimilarity_matrices(activations: dict[str, dict[str, Tensor]]) -> dict[str, dict[str, np.ndarray]]:
    """One ``[N, N]`` RDM (rsatoolbox, ``1 - Pearson correlation`` of activation patterns) per model and layer."""
    data, rdms = (optional_import(f"rsatoolbox.{name}", "representational dissimilarity matrices", "rsatoolbox")
                  for name in ("data", "rdm"))

    def rdm(features: Tensor) -> np.ndarray:
        dataset = data.Dataset(features.double().numpy())
        return np.asarray(rdms.calc_rdm(dataset, method=RDM_METHOD).get_matrices()[0])

    return {model: {layer: rdm(features) for layer, features in layers.items()}
            for model, layers in activations.items()}


def tsne_perplexity(n_images: int) -> float:
    """``TSNE_PERPLEXITY``, or a third of ``n_images - 1`` when that is smaller (t-SNE needs perplexity < N)."""
    return min(TSNE_PERPLEXITY, (n_images - 1) / 3)


def tsne_map(features: Tensor) -> np.ndarray:
    """A 2-D t-SNE embedding ``[N, 2]`` of ``features`` ``[N, D]`` (scikit-learn, PCA start, seed ``TSNE_SEED``,
    :func:`tsne_perplexity`)."""
    manifold = optional_import("sklearn.manifold", "t-SNE maps", "scikit-learn")
    tsne = manifold.TSNE(n_components=2, perplexity=tsne_perplexity(features.shape[0]), init="pca",
                         learning_rate="auto", random_state=TSNE_SEED)
    return np.asarray(tsne.fit_transform(features.double().numpy()))


def tsne_layer(activations: dict[str, Tensor]) -> str:
    """The default t-SNE layer among a model's default layers: the last one before the output (the output if
    there is no other)."""
    names = list(activations)
    return names[-2] if len(names) > 1 else names[-1]


def compare_models(models: dict[str, nn.Module], images: Tensor, labels: Tensor, out_dir: str | Path,
                   layer: str | None = None, *, classes: Sequence[str] | None = None,
                   shown: str | None = None) -> dict[str, Path]:
    """Compare the representations of ``models`` (by name) on float images ``[N, C, H, W]`` in ``[0, 1]`` with
    class ``labels`` ``[N]`` and write into ``out_dir``: ``rdms.safetensors``/``.png`` (an RDM per model and
    default layer), ``cka.json``/``.png`` (the (model, layer) pairs and their CKA matrix) and ``tsne.json``/``.png``
    (the 2-D map of ``layer`` of every model; default: each model's :func:`tsne_layer`). Images are ordered by class
    first. The pictures name the classes ``classes`` (default: the label numbers) and say that they show ``shown``
    (default: "N images"). Returns the written paths by kind (the keys of ``FILES``)."""
    if len(labels) < MIN_IMAGES or len(labels) != len(images):
        raise ValueError(f"compare needs at least {MIN_IMAGES} images with one label each; got {len(images)} "
                         f"images and {len(labels)} labels")
    names = list(classes) if classes is not None else [str(c) for c in range(int(labels.max()) + 1)]
    if len(names) <= int(labels.max()):
        raise ValueError(f"{len(names)} class names for labels up to {int(labels.max())}")
    shown = shown or f"{len(labels):,} images"
    require(PURPOSE, *PACKAGES)
    order = torch.argsort(labels, stable=True)
    images, labels = images[order], labels[order]
    activations = {name: layer_activations(model, images) for name, model in models.items()}
    chosen = {name: layer or tsne_layer(acts) for name, acts in activations.items()}
    mapped = {name: _layer_of(name, model, images, chosen[name]) for name, model in models.items()}
    with output_folder(out_dir) as out:
        paths = {kind: out / name for kind, name in FILES.items()}
        _write_rdms(activations, labels, names, shown, paths)
        _write_cka(activations, shown, paths)
        _write_tsne(mapped, chosen, labels, names, shown, paths)
    return paths


def _layer_of(name: str, model: nn.Module, images: Tensor, layer: str) -> Tensor:
    try:
        return layer_activations(model, images, [layer])[layer]
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content) + "\n")


def _write_rdms(activations: dict[str, dict[str, Tensor]], labels: Tensor, classes: Sequence[str], shown: str,
                paths: dict[str, Path]) -> None:
    """One float32 ``[N, N]`` tensor per ``"<model>/<layer>"`` in a safetensors file (1 MB per matrix at 500
    images, a quarter of the same numbers as JSON text); the method and image labels in its metadata."""
    from safetensors.torch import save_file

    rdms = dissimilarity_matrices(activations)
    tensors = {f"{model}/{layer}": torch.from_numpy(np.ascontiguousarray(rdm, dtype=np.float32))
               for model, layers in rdms.items() for layer, rdm in layers.items()}
    save_file(tensors, str(paths["rdms"]), metadata={"method": RDM_METHOD, "labels": json.dumps(labels.tolist())})
    _save(plot_rdms(rdms, labels, classes, shown), paths["rdms_picture"])


def _write_cka(activations: dict[str, dict[str, Tensor]], shown: str, paths: dict[str, Path]) -> None:
    pairs, matrix = cka_matrix(activations)
    _write_json(paths["cka"], {"method": "linear CKA (Kornblith et al., 2019)", "labels": [list(p) for p in pairs],
                               "matrix": matrix.tolist()})
    _save(plot_cka(pairs, matrix, shown), paths["cka_picture"])


def _write_tsne(features: dict[str, Tensor], layers: dict[str, str], labels: Tensor, classes: Sequence[str],
                shown: str, paths: dict[str, Path]) -> None:
    maps = {name: tsne_map(x) for name, x in features.items()}
    _write_json(paths["tsne"], {
        "random_state": TSNE_SEED, "perplexity": tsne_perplexity(len(labels)), "labels": labels.tolist(),
        "maps": {name: {"layer": layers[name], "coordinates": xy.tolist()} for name, xy in maps.items()}})
    _save(plot_tsne(maps, layers, labels, classes, shown), paths["tsne_picture"])


def class_blocks(labels: Tensor) -> tuple[list[float], list[float], list[int]]:
    """Where the classes of class-ordered ``labels`` lie along an RDM's axis: the centre of each class's block, the
    boundaries between blocks (in pixel coordinates) and the class of each block."""
    present, counts = torch.unique_consecutive(labels, return_counts=True)
    ends = counts.cumsum(0).tolist()
    starts = [0, *ends[:-1]]
    centres = [(a + b - 1) / 2 for a, b in zip(starts, ends)]
    return centres, [end - 0.5 for end in ends[:-1]], present.tolist()


def plot_rdms(rdms: dict[str, dict[str, np.ndarray]], labels: Tensor, classes: Sequence[str], shown: str) -> Any:
    """The matplotlib figure of one RDM per model (rows) and layer (columns) of the class-ordered ``labels``, each
    with its colour bar of ``RDM_QUANTITY``, the class blocks ticked and named along both axes; the title says
    that the images are ``shown``."""
    plt = pyplot("drawing RDMs")
    rows, cols = len(rdms), max(len(layers) for layers in rdms.values())
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols + 0.6, 2.8 * rows + 0.6), squeeze=False,
                             layout="constrained")
    centres, boundaries, present = class_blocks(labels)
    names = [classes[c] for c in present]
    for ax in axes.flat:
        ax.set_axis_off()
    for row, (model, layers) in enumerate(rdms.items()):
        for col, (layer, rdm) in enumerate(layers.items()):
            ax = axes[row][col]
            ax.set_axis_on()
            image = ax.imshow(rdm, cmap="viridis")
            ax.set_title(f"{model}\n{layer}", fontsize=7)
            ax.set_xticks(centres, names, rotation=90, fontsize=5)
            ax.set_yticks(centres, names, fontsize=5)
            ax.set_xticks(boundaries, minor=True)
            ax.set_yticks(boundaries, minor=True)
            ax.tick_params(which="major", length=0, pad=1)
            ax.tick_params(which="minor", length=3)
            bar = fig.colorbar(image, ax=ax, shrink=0.8)
            bar.set_label(RDM_QUANTITY, fontsize=6)
            bar.ax.tick_params(labelsize=5)
    fig.suptitle(f"RDMs ({RDM_QUANTITY} between activation patterns, each on its own colour scale) of {shown}, "
                 "ordered by class", fontsize=9)
    return fig


def plot_cka(pairs: list[tuple[str, str]], matrix: np.ndarray, shown: str) -> Any:
    """The matplotlib figure of the CKA matrix of the (model, layer) ``pairs`` on the images ``shown``."""
    plt = pyplot("drawing the CKA matrix")
    size = 0.35 * len(pairs) + 3.0
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(matrix, cmap="magma", vmin=0.0, vmax=1.0)
    names = [f"{model} {layer}" for model, layer in pairs]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(image, ax=ax, label="linear CKA")
    ax.set_title(f"Linear CKA on {shown}", fontsize=9)
    return fig


def plot_tsne(maps: dict[str, np.ndarray], layers: dict[str, str], labels: Tensor, classes: Sequence[str],
              shown: str) -> Any:
    """The matplotlib figure of each model's t-SNE map side by side, points coloured by class (named ``classes``),
    titled with the images it shows (``shown``) and the t-SNE settings."""
    plt = pyplot("drawing t-SNE maps")
    count = len(classes)
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps) + 0.8, 3.6), squeeze=False,
                             layout="constrained")
    for ax, (name, coordinates) in zip(axes[0], maps.items()):
        points = ax.scatter(coordinates[:, 0], coordinates[:, 1], c=labels.numpy(), cmap="tab10", s=4,
                            vmin=-0.5, vmax=count - 0.5)
        ax.set_title(f"{name}\n{layers[name]}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(points, ax=axes[0].tolist(), label="class")
    bar.set_ticks(range(count), labels=classes, fontsize=7)
    fig.suptitle(f"t-SNE of {shown}, coloured by class (perplexity {tsne_perplexity(len(labels)):.3g}, "
                 f"seed {TSNE_SEED})", fontsize=9)
    return fig


def _save(fig: Any, out: Path) -> Path:
    fig.savefig(out, dpi=120, bbox_inches="tight")
    pyplot("saving a figure").close(fig)
    return out


def untrained_baselines(model_ids: Sequence[str]) -> dict[str, nn.Module]:
    """One untrained model (seed ``BASELINE_SEED``, eval mode) per distinct architecture among ``model_ids``
    (the registered architecture and its ``arch`` record with the family's defaults filled in, less the keys that
    only act in training), built by the
    family of the first id that has it and named ``<entrypoint>.untrained``, or ``<entrypoint>.untrained[<id>]`` when
    an earlier architecture of the same entrypoint took that name (a run folder trained with another width)."""
    from zoo.api import get_entry
    from zoo.registry import get_family

    baselines: dict[tuple[str, str], tuple[str, nn.Module]] = {}
    for model_id in model_ids:
        entry = get_entry(model_id)
        family = get_family(entry.entrypoint)
        resolved = {**family.default_arch, **entry.arch}  # a record written before an option existed omits it
        network = {k: v for k, v in resolved.items() if k not in TRAINING_ONLY_KEYS}
        key = (family.architecture or family.name, json.dumps(network, sort_keys=True))
        if key not in baselines:
            torch.manual_seed(BASELINE_SEED)
            model = family.build_model(entry.arch, dataset=entry.dataset).eval()
            name = f"{entry.entrypoint}.untrained"
            taken = any(existing == name for existing, _ in baselines.values())
            baselines[key] = (f"{name}[{model_id}]" if taken else name, model)
    return dict(baselines.values())


def compare_checkpoints(model_ids: Sequence[str], out_dir: str | Path, layer: str | None = None,
                        n_images: int = DEFAULT_IMAGES, data_root: str | Path | None = None) -> dict[str, Path]:
    """:func:`compare_models` on the checkpoints ``model_ids`` (all of one dataset) and an untrained model of each
    of their architectures (:func:`untrained_baselines`), on the first ``n_images`` test images, named so in the
    pictures with the dataset's class names."""
    from zoo.api import load
    from zoo.data.catalog import dataset_info

    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < MIN_IMAGES:
        raise ValueError(f"the number of images must be an int >= {MIN_IMAGES}, not {n_images!r}")
    require(PURPOSE, *PACKAGES)  # before any download
    ids = distinct_models(model_ids)
    dataset, images, labels = shared_test_images(ids, n_images, data_root, "python -m zoo compare")
    models = {model_id: load(model_id) for model_id in ids} | untrained_baselines(ids)
    info = dataset_info(dataset)
    shown = f"the first {len(labels):,} {info.title} test images"
    return compare_models(models, images, labels, out_dir, layer, classes=info.classes, shown=shown)
