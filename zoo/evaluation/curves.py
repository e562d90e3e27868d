"""Learning curves recorded by training runs (``recipe.curve`` of a manifest entry), drawn side by side.

    python -m zoo curves bp_mlp.cifar10 fa_mlp.cifar10 --out curves.png

Each run records, per epoch, the mean training loss, the test top-1 after the epoch and the epoch's wall time.
Checkpoints published before curves were recorded have none; :func:`curve` says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from zoo.evaluation.plotting import pyplot, save_figure, series_style
from zoo.weights.manifest import Entry


def curve(entry: Entry) -> list[dict[str, Any]]:
    """The per-epoch records of ``entry``; :class:`ValueError` if its run recorded none."""
    records = entry.recipe.get("curve")
    if not records:
        raise ValueError(f"{entry.id} has no learning curve: it was trained before runs recorded one "
                         f"(retrain it with: {entry.recipe.get('command')})")
    return list(records)


def curves_figure(entries: Sequence[Entry]) -> Any:
    """The matplotlib figure of test top-1 and training loss per epoch of every entry, one line each, labelled
    with :attr:`Entry.name`."""
    curves = {entry.name: curve(entry) for entry in entries}
    plt = pyplot("drawing learning curves")
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4))
    for index, (name, records) in enumerate(curves.items()):
        epochs = [r["epoch"] for r in records]
        style = {**series_style(index), "markevery": 5, "markersize": 4}
        acc.plot(epochs, [r.get("test_top1") for r in records], label=name, **style)
        loss.plot(epochs, [r["train_loss"] for r in records], label=name, **style)
    acc.set(xlabel="epoch", ylabel="test top-1 (%)", title="test accuracy")
    loss.set(xlabel="epoch", ylabel="training loss (the rule's objective)", title="training loss", yscale="log")
    return fig


def save_curves(entries: Sequence[Entry], out: str | Path) -> Path:
    """Draw :func:`curves_figure` into one image file; return its path."""
    return save_figure(curves_figure(entries), out, dpi=120)
