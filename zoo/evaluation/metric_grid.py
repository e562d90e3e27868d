"""The perturbation sizes at which the manifest reports robustness, per dataset (the keys of its metrics).

Gaussian noise uses the same σ grid everywhere (on the [0, 1] pixel scale). FGSM (``metrics.top1_fgsm``, all test
images) uses the ε the field uses per dataset: 0.05 and 0.1 for MNIST and Fashion-MNIST, 2/255 and 8/255 for
CIFAR-10. The attack comparison (``metrics.robustness``: FGSM and PGD under three attack models) uses a wider L∞
grid, up to the 0.3 of MNIST robustness studies, and the same 2/255 and 8/255 for CIFAR-10. Keys are written as in
the manifest; :func:`perturbation_size` turns one into a number.
"""
from __future__ import annotations

from fractions import Fraction

NOISE_SIGMAS: tuple[str, ...] = ("0.1", "0.2", "0.3")
FGSM_EPSILONS: dict[str, tuple[str, ...]] = {
    "mnist": ("0.05", "0.1"),
    "fashion_mnist": ("0.05", "0.1"),
    "cifar10": ("2/255", "8/255"),
}

ATTACK_MODELS: tuple[str, ...] = ("white_box", "rule_gradient", "transfer")  # see zoo.evaluation.attacks
ATTACKS: tuple[str, ...] = ("fgsm", "pgd")
LOGIT_TEMPERATURES: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)  # tried in this order, see attacks
ATTACK_EPSILONS: dict[str, tuple[str, ...]] = {
    "mnist": ("0.05", "0.1", "0.2", "0.3"),
    "fashion_mnist": ("0.05", "0.1", "0.2", "0.3"),
    "cifar10": ("2/255", "8/255"),
}


def attack_epsilons(dataset: str) -> tuple[str, ...]:
    """The L∞ ε keys of the attack comparison on ``dataset``."""
    try:
        return ATTACK_EPSILONS[dataset]
    except KeyError:
        raise ValueError(f"no attack grid for dataset {dataset!r}; known: {sorted(ATTACK_EPSILONS)}") from None


def fgsm_epsilons(dataset: str) -> tuple[str, ...]:
    """The FGSM ε keys of ``dataset``; :class:`ValueError` naming the known datasets otherwise."""
    try:
        return FGSM_EPSILONS[dataset]
    except KeyError:
        raise ValueError(f"no FGSM grid for dataset {dataset!r}; known: {sorted(FGSM_EPSILONS)}") from None


def perturbation_size(key: str) -> float:
    """The number a grid key stands for: ``"0.1"`` -> 0.1, ``"8/255"`` -> 0.03137..."""
    return float(Fraction(key))
