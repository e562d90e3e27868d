"""Attribution maps (captum, the ``analysis`` extra) of several checkpoints on the same test images, side by side.

    python -m zoo explain bp_mlp.mnist fa_mlp.mnist dfa_mlp.mnist --out explain/ [--method saliency] [--images 8]

    from zoo.evaluation.attributions import attribute, explain_models
    maps = attribute(model, x, labels, "integrated_gradients")   # a tensor of x's shape
    explain_models(["bp_mlp.mnist", "fa_mlp.mnist"], "explain/")  # attributions.json / .safetensors / .png

Each map attributes the logit of the image's true label to the input pixels:

``saliency``              ``|d logit / d x|`` (Simonyan et al., 2014);
``integrated_gradients``  ``(x - x0) * mean of d logit / d x`` along the straight path from the black image
                          ``x0 = 0`` to ``x``, ``IG_STEPS`` Gauss-Legendre steps (Sundararajan et al., 2017).

The gradients are the trained network's true input gradients, even for rules that do not backpropagate: the maps
are computed under :func:`zoo.evaluation.attacks.input_gradient_of` ``(model, "white_box")``, where every rule layer
is a plain layer (eval mode; feedback alignment's ``B``, DFA's projections and the like are not used), so two
rules' maps explain the two functions they learned, not their training signals.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from zoo.evaluation.attacks import input_gradient_of
from zoo.evaluation.extras import optional_import, require
from zoo.evaluation.output import output_folder
from zoo.evaluation.plotting import pyplot
from zoo.evaluation.side_by_side import distinct_models, shared_test_images

METHODS = ("saliency", "integrated_gradients")
IG_STEPS = 50
MAX_IMAGES = 32  # each image is a column of the picture: 32 columns are already about 40 inches wide
PACKAGES = ("captum", "matplotlib")  # the maps, the picture
FILES = {"metadata": "attributions.json", "maps": "attributions.safetensors", "picture": "attributions.png"}


def check_method(method: str) -> None:
    """:class:`ValueError` naming the accepted methods unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; accepted: {', '.join(METHODS)}")


def check_n_images(n_images: int) -> None:
    """:class:`ValueError` naming the accepted range unless ``n_images`` is an int from 1 to :data:`MAX_IMAGES`."""
    if isinstance(n_images, bool) or not isinstance(n_images, int) or not 1 <= n_images <= MAX_IMAGES:
        raise ValueError(f"the number of images must be a positive int of at most {MAX_IMAGES} (one picture column "
                         f"each), not {n_images!r}")


def attribute(model: nn.Module, x: Tensor, target: Tensor, method: str = "saliency") -> Tensor:
    """The attribution of each image's ``target`` logit to the float images ``x`` ``[N, C, H, W]`` in ``[0, 1]``:
    ``method`` is ``saliency`` (``|gradient|``) or ``integrated_gradients`` (black-image baseline, ``IG_STEPS``
    steps). Computed from the model's true input gradient (rule layers as plain layers, see the module doc);
    returns a detached tensor of ``x``'s shape."""
    check_method(method)
    attr = optional_import("captum.attr", "attribution maps", "captum")
    inputs = x.detach().clone().requires_grad_(True)
    with input_gradient_of(model, "white_box"):
        if method == "saliency":
            maps = attr.Saliency(model).attribute(inputs, target=target, abs=True)
        else:
            maps = attr.IntegratedGradients(model).attribute(inputs, baselines=torch.zeros_like(inputs),
                                                             target=target, n_steps=IG_STEPS)
    return maps.detach()


def heatmaps(maps: Tensor) -> Tensor:
    """``|maps|`` summed over channels and scaled per image to ``[0, 1]`` by its largest value: ``[N, H, W]``."""
    summed = maps.abs().sum(1)
    peak = summed.flatten(1).amax(1).clamp_min(torch.finfo(summed.dtype).tiny)
    return summed / peak.view(-1, 1, 1)


def _model_maps(model_id: str, x: Tensor, labels: Tensor, method: str) -> tuple[Tensor, list[int]]:
    """One checkpoint's attribution maps and predicted labels on the images ``x`` (on the CPU)."""
    from zoo.api import load

    model = load(model_id).eval()
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    return attribute(model, x, labels, method), predicted


def save_picture(images: Tensor, maps: dict[str, Tensor], labels: Tensor, predicted: dict[str, list[int]],
                 out: str | Path, method: str) -> Path:
    """Draw the images (first row, titled with their labels) above one row of :func:`heatmaps` per model (titled
    with its predictions) into one image file; return its path."""
    plt = pyplot("drawing attribution maps")
    rows, cols = 1 + len(maps), len(images)
    fig, axes = plt.subplots(rows, cols, figsize=(max(1.3 * cols + 1.2, 4.5), 1.3 * rows + 0.6), squeeze=False)
    for col, image in enumerate(images):
        ax = axes[0][col]
        ax.imshow(image.permute(1, 2, 0).squeeze(2).numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(f"label {int(labels[col])}", fontsize=8)
    axes[0][0].set_ylabel("input", fontsize=8)
    for row, (model_id, model_maps) in enumerate(maps.items(), start=1):
        for col, heat in enumerate(heatmaps(model_maps)):
            axes[row][col].imshow(heat.numpy(), cmap="inferno", vmin=0.0, vmax=1.0)
            axes[row][col].set_title(f"pred {predicted[model_id][col]}", fontsize=8)
        axes[row][0].set_ylabel(model_id, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{method.replace('_', ' ')}\n|attribution| summed over channels, each map scaled to its max",
                 fontsize=9)
    fig.tight_layout()
    path = Path(out)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def explain_models(model_ids: Sequence[str], out_dir: str | Path, method: str = "saliency", n_images: int = 8,
                   data_root: str | Path | None = None) -> dict[str, Path]:
    """Attribute the first ``n_images`` (1 to :data:`MAX_IMAGES`) test images of the checkpoints' shared dataset,
    the same images for every model, and write into ``out_dir``: ``attributions.json`` (ids, method, image indices,
    labels, each model's predictions), ``attributions.safetensors`` (one ``[N, C, H, W]`` map per id) and
    ``attributions.png`` (the images above one row of maps per model). Returns the paths by kind (``metadata``,
    ``maps``, ``picture``)."""
    from safetensors.torch import save_file

    check_method(method)
    check_n_images(n_images)
    require("attribution maps (python -m zoo explain)", *PACKAGES)  # before any download
    ids = distinct_models(model_ids)
    dataset, images, labels = shared_test_images(ids, n_images, data_root, "python -m zoo explain")
    maps: dict[str, Tensor] = {}
    predicted: dict[str, list[int]] = {}
    for model_id in ids:
        maps[model_id], predicted[model_id] = _model_maps(model_id, images, labels, method)
    with output_folder(out_dir) as out:
        paths = {kind: out / name for kind, name in FILES.items()}
        save_file({k: v.contiguous() for k, v in maps.items()}, str(paths["maps"]), metadata={"method": method})
        paths["metadata"].write_text(json.dumps(_metadata(ids, dataset, method, labels, predicted), indent=2) + "\n")
        save_picture(images, maps, labels, predicted, paths["picture"], method)
    return paths


def _metadata(ids: list[str], dataset: str, method: str, labels: Tensor,
              predicted: dict[str, list[int]]) -> dict[str, Any]:
    details = {"baseline": "black image (all zeros)", "n_steps": IG_STEPS} if method == "integrated_gradients" else {}
    return {"ids": ids, "dataset": dataset, "split": "test", "method": method, **details,
            "target": "true label", "gradient": "true input gradient (white_box)",
            "image_indices": list(range(len(labels))), "labels": labels.tolist(), "predicted": predicted,
            "maps": FILES["maps"]}
