"""Learned receptive fields: the weights of a model's first layer on the image, drawn as a grid of images: the
rows of a fully connected layer, each reshaped to the image, or the ``C x k x k`` kernels of a convolution.

    python -m zoo show-filters krotov_mlp.mnist --out filters.png [--n 100] [--cols 10]

    from zoo.evaluation.filters import filter_grid, save_filters
    grid = filter_grid(model, n=100)          # numpy array, no plotting library needed
    save_filters(model, "filters.png")        # needs matplotlib (pip install -r requirements-extras.txt)

Each unit's weight vector is reshaped to the input image (C, H, W), or taken as its kernel (C, k, k), and scaled by
its own largest magnitude, so every tile spans [-1, 1]: one channel is drawn with a diverging colour map (red
positive, blue negative, white 0, as in Krotov & Hopfield's figures); three channels as colours
``0.5 + 0.5 * w / max|w|`` (grey is 0).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from zoo.evaluation.output import output_folder
from zoo.evaluation.plotting import pyplot

MIN_TITLE_POINTS = 8.0
TITLE_POINTS_PER_INCH = 1.5  # of figure width: the title keeps its size relative to the grid when shown shrunk


def input_shape(model: nn.Module) -> tuple[int, int, int]:
    """The ``(C, H, W)`` input shape a zoo model checks (from its :class:`~zoo.archs.image_input.ImageInput`)."""
    from zoo.archs.image_input import ImageInput

    for module in model.modules():
        if isinstance(module, ImageInput):
            c, h, w = module.in_shape
            return c, h, w
    raise ValueError(f"{type(model).__name__} has no ImageInput module: its input shape is unknown")


def first_layer_filters(model: nn.Module) -> tuple[str, Tensor]:
    """Name and receptive fields ``[units, C, h, w]`` of the model's first layer that reads the image: a fully
    connected layer on the whole image (each row reshaped to the image's ``C x H x W``) or a convolution on its
    ``C`` channels (the ``C x k x k`` kernels), whichever comes first among the model's modules."""
    c, h, w = input_shape(model)
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, Tensor) and weight.dim() == 2 and weight.shape[1] == c * h * w:
            return name, weight.detach().reshape(-1, c, h, w)
        if isinstance(weight, Tensor) and weight.dim() == 4 and weight.shape[1] == c:
            return name, weight.detach()
    raise ValueError(f"{type(model).__name__} has no fully connected layer on the raw {c}x{h}x{w} input and no "
                     f"convolution on its {c} channels: no receptive fields to draw")


def filter_grid(model: nn.Module, n: int = 100, cols: int | None = None, gap: int = 1) -> np.ndarray:
    """The first ``n`` units' receptive fields (:func:`first_layer_filters`) tiled ``cols`` per row (default: a
    square grid).

    Returns ``[rows*(h+gap)-gap, cols*(w+gap)-gap]`` for one channel (values in [-1, 1], gaps NaN) or
    ``[..., ..., 3]`` for three channels (values in [0, 1], gaps 1 = white); ``h x w`` is the image for a fully
    connected layer, the kernel for a convolution.
    """
    _, weight = first_layer_filters(model)
    c, h, w = weight.shape[1:]
    n = max(1, min(int(n), weight.shape[0]))
    cols = int(cols) if cols else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    tiles = weight[:n].double().numpy()
    scale = np.abs(tiles).reshape(n, -1).max(1).reshape(n, 1, 1, 1)
    tiles = tiles / np.where(scale > 0, scale, 1.0)
    height, width = rows * (h + gap) - gap, cols * (w + gap) - gap
    if c == 1:
        grid = np.full((height, width), np.nan)
    else:
        grid = np.ones((height, width, c))
        tiles = 0.5 + 0.5 * tiles
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = r * (h + gap), q * (w + gap)
        if c == 1:
            grid[y:y + h, x:x + w] = tiles[i, 0]
        else:
            grid[y:y + h, x:x + w] = tiles[i].transpose(1, 2, 0)
    return grid


def title_points(width: float, text: str) -> float:
    """The font size (points) of the title ``text`` over a figure ``width`` inches wide: ``TITLE_POINTS_PER_INCH``
    per inch of width, as long as the text fits the width (a character is about 0.6 of the size wide), never under
    ``MIN_TITLE_POINTS``."""
    fits = 0.95 * width * 72 / (0.6 * max(len(text), 1))
    return max(MIN_TITLE_POINTS, min(TITLE_POINTS_PER_INCH * width, fits))


def filters_figure(model: nn.Module, n: int = 100, cols: int | None = None, title: str | None = None) -> Any:
    """The matplotlib figure of :func:`filter_grid`, captioned with ``title`` (default: the layer's name) and how
    many units it shows, in a font that grows with the figure (:func:`title_points`)."""
    plt = pyplot("drawing filters")
    grid = filter_grid(model, n, cols)
    name, weight = first_layer_filters(model)
    shown = min(int(n), weight.shape[0])
    height, width = grid.shape[:2]
    fig, ax = plt.subplots(figsize=(max(3.0, width / 12), max(3.0, height / 12) + 0.4))
    if grid.ndim == 2:
        image = ax.imshow(grid, cmap="bwr", vmin=-1.0, vmax=1.0, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    text = f"{title or name}: first {shown} of {weight.shape[0]} units (each scaled by its max |w|)"
    ax.set_title(text, fontsize=title_points(fig.get_figwidth(), text))
    return fig


def save_filters(model: nn.Module, out: str | Path, n: int = 100, cols: int | None = None,
                 title: str | None = None) -> Path:
    """Draw :func:`filters_figure` to an image file (format from the suffix: .png, .pdf, .svg ...); return its
    path."""
    fig = filters_figure(model, n, cols, title)
    out = Path(out)
    try:
        with output_folder(out.parent):
            fig.savefig(out, dpi=150, bbox_inches="tight")
    finally:
        pyplot("drawing filters").close(fig)
    return out
