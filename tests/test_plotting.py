"""Figures of many checkpoints: every checkpoint keeps a line style of its own, and one legend sits outside the
panels (drawn from the real manifest, whose CIFAR-10 column has more checkpoints than there are colours)."""
from __future__ import annotations

import pytest

from zoo.evaluation.plotting import COLOURS, add_figure_legend, series_style
from zoo.weights.manifest import read_manifest
from zoo.weights.paths import REPO_ROOT


def _style(line) -> tuple[object, str, str]:
    return line.get_color(), line.get_linestyle(), line.get_marker()


def test_forty_series_have_forty_styles() -> None:
    styles = [tuple(series_style(i).values()) for i in range(4 * COLOURS)]
    assert len(set(styles)) == len(styles)


def test_a_figure_of_every_cifar10_checkpoint_tells_them_apart_and_keeps_the_legend_off_the_panels() -> None:
    pytest.importorskip("matplotlib")
    from zoo.evaluation.robustness_plots import noise_plot

    manifest = read_manifest(REPO_ROOT / "weights_manifest.json")
    entries = sorted((e for e in manifest.entries.values() if e.published and e.dataset == "cifar10"),
                     key=lambda e: e.id)
    assert len(entries) > COLOURS, "the test needs more checkpoints than colours"
    fig = noise_plot(entries)
    for ax in fig.axes:
        styles = [_style(line) for line in ax.get_lines()]
        assert len(styles) == len(entries) and len(set(styles)) == len(styles)
    legend = add_figure_legend(fig)
    assert [text.get_text() for text in legend.get_texts()] == [e.entrypoint for e in entries]
    fig.canvas.draw()
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent()), "the legend covers a panel"
