"""The attack comparison of several checkpoints (their recorded ``metrics.robustness``) drawn side by side.

    python -m zoo attacks fa_mlp.mnist dfa_mlp.mnist bp_mlp.mnist --out attacks.png [--attack pgd|fgsm]

One panel per attack model (white-box, rule gradient, transfer from backprop), accuracy against the L∞ ε, one line
per checkpoint; the clean accuracy on the same images is the point at ε = 0.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from zoo.evaluation.metric_grid import ATTACK_MODELS, ATTACKS, perturbation_size
from zoo.evaluation.plotting import pyplot
from zoo.weights.manifest import Entry

TITLES = {"white_box": "white-box (true input gradient)", "rule_gradient": "the rule's own gradient",
          "transfer": "transfer from backprop"}


def robustness(entry: Entry) -> dict:
    """The recorded ``metrics.robustness`` of ``entry``; :class:`ValueError` naming the command that measures it."""
    block = entry.metrics.get("robustness") if entry.published else None
    if block is None:
        raise ValueError(f"{entry.id} has no attack figures yet: python -m training.robustness {entry.id}")
    return block


def save_attack_plot(entries: Sequence[Entry], out: str | Path, attack: str = "pgd", title: str = "") -> Path:
    """Draw accuracy vs ε per attack model for every entry into one image file; return its path."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; accepted: {ATTACKS}")
    blocks = {entry.id: robustness(entry) for entry in entries}
    plt = pyplot("drawing the attack comparison")
    fig, axes = plt.subplots(1, len(ATTACK_MODELS), figsize=(4.2 * len(ATTACK_MODELS), 3.8), sharey=True)
    for ax, attack_model in zip(axes, ATTACK_MODELS):
        for model_id, block in blocks.items():
            curve = block[f"top1_{attack}"].get(attack_model)
            if curve is None:
                continue
            eps = [0.0, *(perturbation_size(k) for k in curve)]
            ax.plot(eps, [block["top1_clean"], *curve.values()], marker="o", label=model_id.split(".")[0])
        ax.set(title=TITLES[attack_model], xlabel="L∞ ε")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"top-1 (%) under {attack.upper()}")
    axes[0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(out)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
