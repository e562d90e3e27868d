"""Figures of many checkpoints: every checkpoint keeps a line style of its own, and one legend sits outside the
panels (drawn from the real manifest, whose CIFAR-10 column has more checkpoints than there are colours)."""
from __future__ import annotations

import dataclasses

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


def test_noise_and_attack_pictures_say_on_which_test_images_they_were_measured() -> None:
    """Issue 32 (pictures): ``fgsm.png`` (the attack comparison, on the first 1,000 test images) sat beside
    ``noise.png`` (whole test split) with nothing to tell them apart. Each picture's title and y-axis label now
    say which images, read from the manifest's own counts (``metrics.n_eval``, ``metrics.robustness.n_eval``)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from zoo.evaluation.robustness_plots import attack_plot, noise_plot

    entries = read_manifest(REPO_ROOT / "weights_manifest.json").entries
    pair = [entries["bp_mlp.mnist"], entries["fa_mlp.mnist"]]
    assert {e.metrics["n_eval"] for e in pair} == {10_000} and {e.metrics["robustness"]["n_eval"] for e in pair} \
        == {1_000}, "the test reads the published counts"
    noise = noise_plot(pair, title="bp_mlp.mnist, fa_mlp.mnist")
    assert noise.get_suptitle() == ("bp_mlp.mnist, fa_mlp.mnist\n"
                                    "Gaussian noise and FGSM on all 10,000 test images (the whole split)")
    assert noise.axes[0].get_ylabel() == "top-1 (%) on\nall 10,000 test images (the whole split)"
    for attack in ("fgsm", "pgd"):
        fig = attack_plot(pair, attack)
        assert fig.get_suptitle() == f"{attack.upper()} on the first 1,000 test images"
        assert fig.axes[0].get_ylabel() == f"top-1 (%) under {attack.upper()} on\nthe first 1,000 test images"
        plt.close(fig)
    partial = dataclasses.replace(pair[1], metrics={**pair[1].metrics, "n_eval": 5_000})  # a --test-limit run
    fig = noise_plot([pair[0], partial])
    assert fig.get_suptitle() == "Gaussian noise and FGSM on the first 5,000 or 10,000 test images"
    plt.close(fig)
    plt.close(noise)
