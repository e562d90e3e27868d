"""The recorded robustness figures of checkpoints, drawn side by side and written out as JSON.

    python -m zoo robustness fa_mlp.mnist dfa_mlp.mnist bp_mlp.mnist --out robustness/

writes ``robustness.json`` (every curve drawn), ``noise.png`` (accuracy vs Gaussian σ and vs FGSM ε on the whole
test split: ``metrics.top1_noise`` / ``top1_fgsm``) and, where the checkpoints have the attack comparison
(``metrics.robustness``, measured by ``python -m training.robustness``), ``pgd.png`` and ``fgsm.png``: one panel per
attack model (white-box, the rule's own gradient, transfer from backprop), accuracy vs L∞ ε, one line per
checkpoint. The clean accuracy on the same images is each curve's point at 0. The two sets of figures are on
different images (``metrics.n_eval``: the whole split of 10,000; ``metrics.robustness.n_eval``: the first 1,000), and
every picture says which in its title and y-axis label. Nothing is measured here: the figures are those of the
manifest, which ``python -m zoo verify --robustness`` recomputes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from zoo.data.catalog import dataset_info
from zoo.evaluation.extras import require
from zoo.evaluation.metric_grid import ATTACK_MODELS, ATTACKS, perturbation_size
from zoo.evaluation.output import output_folder
from zoo.evaluation.plotting import pyplot, save_figure, series_style
from zoo.evaluation.side_by_side import shared_dataset
from zoo.weights.manifest import Entry

TITLES = {"white_box": "white-box (true input gradient)", "rule_gradient": "the rule's own gradient",
          "transfer": "transfer from backprop"}
Curve = list[tuple[float, float]]


def attack_comparison(entry: Entry) -> dict[str, Any]:
    """The recorded ``metrics.robustness`` of ``entry``; :class:`ValueError` naming the command that measures it."""
    block = entry.metrics.get("robustness") if entry.published else None
    if block is None:
        raise ValueError(f"{entry.name} has no attack figures yet: python -m training.robustness {entry.name}")
    return dict(block)


def series_label(entry: Entry) -> str:
    """A line's label in these pictures, whose checkpoints share one dataset: a published checkpoint's family, a
    training run's folder (:attr:`Entry.name`)."""
    return entry.entrypoint if entry.location is None else entry.name


def _points(clean: float, curve: dict[str, float]) -> Curve:
    return [(0.0, clean), *((perturbation_size(key), value) for key, value in curve.items())]


def full_test_curves(entry: Entry) -> dict[str, Curve]:
    """``{"noise": [(σ, top-1)...], "fgsm": [(ε, top-1)...]}`` on the whole test split, starting at (0, clean);
    ``"fgsm"`` only where the manifest records it."""
    if not entry.published:
        raise ValueError(f"{entry.name} is {entry.status}: it has no figures")
    clean = entry.metrics["top1"]
    return {kind: _points(clean, entry.metrics[f"top1_{kind}"]) for kind in ("noise", "fgsm")
            if f"top1_{kind}" in entry.metrics}


def attack_curves(entry: Entry, attack: str) -> dict[str, Curve]:
    """Per attack model, ``[(ε, top-1)...]`` of ``attack`` (``"pgd"`` or ``"fgsm"``) on the attack images."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; accepted: {ATTACKS}")
    block = attack_comparison(entry)
    return {model: _points(block["top1_clean"], curve) for model, curve in block[f"top1_{attack}"].items()}


def shown_images(dataset: str, counts: Sequence[int]) -> str:
    """Which test images of ``dataset`` figures measured on the first ``counts`` images (one count per checkpoint)
    are on, for a picture: "all 10,000 test images (the whole split)", "the first 1,000 test images"."""
    n_test = dataset_info(dataset).n_test
    distinct = sorted(set(counts))
    if distinct == [n_test]:
        return f"all {n_test:,} test images (the whole split)"
    return f"the first {' or '.join(f'{n:,}' for n in distinct)} test images"


def noise_plot(entries: Sequence[Entry], title: str = "") -> Any:
    """The matplotlib figure of accuracy vs Gaussian σ and vs FGSM ε (``metrics.n_eval`` test images: the whole
    split), one line per entry; the title and y-axis label say which images."""
    images = shown_images(shared_dataset(entries, "a robustness plot"), [entry.metrics["n_eval"] for entry in entries])
    curves = {entry.name: full_test_curves(entry) for entry in entries}
    plt = pyplot("drawing robustness curves")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for index, entry in enumerate(entries):
        for ax, kind in zip(axes, ("noise", "fgsm")):
            if kind in curves[entry.name]:
                xs, ys = zip(*curves[entry.name][kind])
                ax.plot(xs, ys, label=series_label(entry), **series_style(index))
    axes[0].set(title="Gaussian noise", xlabel="σ (pixels in [0, 1])", ylabel=f"top-1 (%) on\n{images}")
    axes[1].set(title="FGSM, white-box", xlabel="L∞ ε")
    return _decorate(fig, axes, title, f"Gaussian noise and FGSM on {images}")


def attack_plot(entries: Sequence[Entry], attack: str = "pgd", title: str = "") -> Any:
    """The matplotlib figure of accuracy vs ε per attack model (one panel each), one line per entry, on the images
    of the attack comparison (``metrics.robustness.n_eval``: the first 1,000), which the title and y-axis label
    name."""
    dataset = shared_dataset(entries, "a robustness plot")
    images = shown_images(dataset, [attack_comparison(entry)["n_eval"] for entry in entries])
    curves = {entry.name: attack_curves(entry, attack) for entry in entries}
    plt = pyplot("drawing the attack comparison")
    fig, axes = plt.subplots(1, len(ATTACK_MODELS), figsize=(4.2 * len(ATTACK_MODELS), 3.8), sharey=True)
    for ax, attack_model in zip(axes, ATTACK_MODELS):
        for index, entry in enumerate(entries):
            points = curves[entry.name].get(attack_model)
            if points is not None:
                xs, ys = zip(*points)
                ax.plot(xs, ys, label=series_label(entry), **series_style(index))
        ax.set(title=TITLES[attack_model], xlabel="L∞ ε")
    axes[0].set_ylabel(f"top-1 (%) under {attack.upper()} on\n{images}")
    return _decorate(fig, axes, title, f"{attack.upper()} on {images}")


def _decorate(fig: Any, axes: Any, title: str, caption: str) -> Any:
    """Grids, a note in every panel without a curve, and the title: ``title``, if any, above ``caption``."""
    for ax in axes:
        ax.grid(alpha=0.3)
        if not ax.get_legend_handles_labels()[0]:
            ax.text(0.5, 0.5, "none of these checkpoints", ha="center", transform=ax.transAxes)
    fig.suptitle(f"{title}\n{caption}" if title else caption)
    return fig


def save_noise_plot(entries: Sequence[Entry], out: str | Path, title: str = "") -> Path:
    """:func:`noise_plot` written to an image file."""
    return save_figure(noise_plot(entries, title), out)


def save_attack_plot(entries: Sequence[Entry], out: str | Path, attack: str = "pgd", title: str = "") -> Path:
    """:func:`attack_plot` written to an image file."""
    return save_figure(attack_plot(entries, attack, title), out)


def robustness_record(entries: Sequence[Entry]) -> dict[str, Any]:
    """Every curve :func:`write_robustness_curves` draws, as plain JSON data keyed by checkpoint id."""
    record: dict[str, Any] = {"dataset": shared_dataset(entries, "a robustness plot"), "checkpoints": {}}
    for entry in entries:
        item: dict[str, Any] = dict(full_test_curves(entry))
        block = entry.metrics.get("robustness")
        if block is not None:
            item["attack_comparison"] = {"images": block["n_eval"], "transfer_source": block["transfer_source"],
                                         **{attack: attack_curves(entry, attack) for attack in ATTACKS}}
        record["checkpoints"][entry.name] = item
    return record


def write_robustness_curves(entries: Sequence[Entry], out_dir: str | Path) -> list[Path]:
    """Write ``robustness.json`` and ``noise.png`` into ``out_dir``, and ``pgd.png`` / ``fgsm.png`` drawing the
    entries that have the attack comparison (the others have no ``attack_comparison`` in the JSON); return the paths."""
    require("robustness plots", "matplotlib")
    record = robustness_record(entries)
    title = ", ".join(entry.name for entry in entries) if len(entries) < 4 else record["dataset"]
    with_attacks = [entry for entry in entries if "robustness" in entry.metrics]
    with output_folder(out_dir) as folder:
        paths = [folder / "robustness.json"]
        paths[0].write_text(json.dumps(record, indent=2) + "\n")
        paths.append(save_noise_plot(entries, folder / "noise.png", title=title))
        for attack in ATTACKS if with_attacks else ():
            paths.append(save_attack_plot(with_attacks, folder / f"{attack}.png", attack, title=title))
    return paths
