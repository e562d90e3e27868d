"""The accuracy each checkpoint must reach (the issues' bars) and the published figures it is compared with.

One place for them: README's "bars and anchors" table (:func:`training.readme_table.render_targets`) reads this
table and sets each published checkpoint's measured top-1 beside its bar.
"""
from __future__ import annotations

from typing import NamedTuple


class Target(NamedTuple):
    """The top-1 (%) a checkpoint must reach and the literature figure it is compared with ("" when none)."""

    bar: float
    anchor: str = ""


_BIOTORCH_LENET = "BioTorch LeNet"
# BioTorch's CIFAR-10 figures come from its `le_net_cifar` (biotorch 0.0.16, models/le_net.py): 3x3 convolutions with
# 32-64-128 maps, global average pooling, 256 hidden units, 0.13 M parameters; 250 epochs, weight decay 1e-4; the
# test top-1 of the epoch best on a 5,000-image validation split. Neither zoo CIFAR-10 conv net is that net.
_BIOTORCH_CIFAR = "BioTorch CIFAR-10 LeNet (3×3 convs, 0.13 M params, 250 epochs)"
_BIOTORCH_RESNET20 = "BioTorch ResNet-20 (250 epochs)"

TARGETS: dict[str, Target] = {
    # CIFAR-10 for the first families (issue 11)
    "bp_mlp.cifar10": Target(58, "backprop, 1 hidden layer: 54.2–55.0 (seed project)"),
    "fa_mlp.cifar10": Target(52, "FC feedback-alignment nets ≈ 50 (seed projects)"),
    "dfa_mlp.cifar10": Target(52, "FC feedback-alignment nets ≈ 50 (seed projects)"),
    "usf_mlp.cifar10": Target(55),
    "drtp_mlp.cifar10": Target(42, "Frenkel et al. 2021 (FC)"),
    "dtp_mlp.cifar10": Target(48, "Lee 2015 / Meulemans 2020 (FC) ≈ 50"),
    "krotov_mlp.cifar10": Target(50, "Krotov–Hopfield, 2000 units: 49.0 (seed project)"),
    "krotov_fc.cifar10": Target(50, "Krotov–Hopfield, 2000 units: 49.0 (seed project)"),
    "krotov_fa.cifar10": Target(50, "Krotov–Hopfield, 2000 units: 49.0 (seed project)"),
    "semihebb_mlp.cifar10": Target(45),
    "bp_lenet.cifar10": Target(72),
    "usf_lenet.cifar10": Target(70),
    "brsf_lenet.cifar10": Target(70),
    "frsf_lenet.cifar10": Target(70),
    "fa_lenet.cifar10": Target(58, f"{_BIOTORCH_CIFAR}: 53.3 (SGD) / 59.3 (Adam)"),
    "dfa_lenet.cifar10": Target(58, f"{_BIOTORCH_CIFAR}: 45.8 (SGD) / 62.4 (Adam)"),
    "bp_cnn.cifar10": Target(82, f"{_BIOTORCH_CIFAR}: 85.8 (SGD) / 84.1 (Adam)"),
    "usf_cnn.cifar10": Target(80, f"{_BIOTORCH_CIFAR}: 83.8"),
    "brsf_cnn.cifar10": Target(80, f"{_BIOTORCH_CIFAR}: 84.0"),
    "frsf_cnn.cifar10": Target(80, f"{_BIOTORCH_CIFAR}: 83.1"),
    "fa_cnn.cifar10": Target(58, f"{_BIOTORCH_CIFAR}: 53.3 (SGD) / 59.3 (Adam)"),
    "dfa_cnn.cifar10": Target(60, f"{_BIOTORCH_CIFAR}: 45.8 (SGD) / 62.4 (Adam)"),
    # ResNet-20 against BioTorch's ResNet-20 (Benchmarks.md: 250 epochs, 45k/5k split, test top-1 of the best
    # validation epoch; SGD / Adam) (issue 28)
    "bp_resnet20.cifar10": Target(90.5, f"{_BIOTORCH_RESNET20}: 91.37 (SGD) / 89.99 (Adam)"),
    "fa_resnet20.cifar10": Target(66, f"{_BIOTORCH_RESNET20}: 67.84 (SGD) / 70.41 (Adam)"),
    "dfa_resnet20.cifar10": Target(62, f"{_BIOTORCH_RESNET20} (error projected through [10, C, k, k] kernels, not the "
                                       "zoo's dense matrices): 54.06 (SGD) / 67.84 (Adam)"),
    "usf_resnet20.cifar10": Target(88.5, f"{_BIOTORCH_RESNET20}: 89.95 (SGD) / 89.41 (Adam)"),
    "brsf_resnet20.cifar10": Target(88.0, f"{_BIOTORCH_RESNET20}: 88.98 (SGD) / 88.92 (Adam)"),
    "frsf_resnet20.cifar10": Target(88.0, f"{_BIOTORCH_RESNET20}: 88.80 (SGD) / 88.78 (Adam)"),
    # Fashion-MNIST LeNets against BioTorch's (validation-split) figures (issue 11)
    "fa_lenet.fashion_mnist": Target(87.2, f"{_BIOTORCH_LENET} (validation split): 86.9–87.2"),
    "dfa_lenet.fashion_mnist": Target(87.2, f"{_BIOTORCH_LENET} (validation split): 86.9–87.2"),
    # spiking nets, equilibrium propagation and deep feedback control (issue 12)
    "snn_mlp.mnist": Target(98.0, "snnTorch tutorial FC SNN ≈ 93–94 after one epoch"),
    "snn_mlp.fashion_mnist": Target(88),
    "snn_mlp.cifar10": Target(50),
    "snn_lenet.mnist": Target(99.2, "surrogate-gradient conv SNNs ≈ 99.4"),
    "snn_lenet.fashion_mnist": Target(90),
    "snn_lenet.cifar10": Target(65),
    "ep_mlp.mnist": Target(97.5, "EP with one or two hidden layers ≈ 97–98"),
    "ep_mlp.fashion_mnist": Target(87),
    "ep_mlp.cifar10": Target(48),
    "dfc_mlp.mnist": Target(97.5, "DFC ≈ 98 (Meulemans et al. 2021)"),
    "dfc_mlp.fashion_mnist": Target(87),
    "dfc_mlp.cifar10": Target(48),
    # Kolen-Pollack (issue 31): Akrout et al. 2019 report it "nearly matches backprop" (ImageNet ResNets)
    "kp_mlp.mnist": Target(98.5),
    "kp_mlp.fashion_mnist": Target(88.5),
    "kp_mlp.cifar10": Target(55),
    "kp_lenet.mnist": Target(99.2, "Akrout et al. 2019: Kolen-Pollack nearly matches backprop (bp_lenet.mnist)"),
    "kp_lenet.fashion_mnist": Target(89.5),
    "kp_lenet.cifar10": Target(78, "Akrout et al. 2019: Kolen-Pollack nearly matches backprop (bp_lenet.cifar10)"),
    "kp_cnn.cifar10": Target(82, "Akrout et al. 2019: Kolen-Pollack nearly matches backprop (bp_cnn.cifar10)"),
    # SoftHebb, Forward-Forward, PEPITA (issue 13)
    "softhebb_cnn.mnist": Target(99.0, "Journé et al. 2023: 99.4"),
    "softhebb_cnn.fashion_mnist": Target(90),
    "softhebb_cnn.cifar10": Target(75, "Journé et al. 2023: 80.3 (up to five blocks, 96-384-1536 wide)"),
    "ff_mlp.mnist": Target(98.3, "Hinton 2022: 98.64 (4 × 2000 units)"),
    "ff_mlp.fashion_mnist": Target(88),
    "ff_mlp.cifar10": Target(50),
    "pepita_mlp.mnist": Target(98.0, "Dellaferrera & Kreiman 2022 ≈ 98"),
    "pepita_mlp.fashion_mnist": Target(88),
    "pepita_mlp.cifar10": Target(50, "Dellaferrera & Kreiman 2022 ≈ 52"),
}
