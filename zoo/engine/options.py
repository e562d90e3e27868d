"""Rule options as written in a recipe's ``fit.rule``: checked against what the rule accepts, and the optimiser and
learning-rate schedule every gradient-trained part builds from them."""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import torch

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant", "step")
STEP_MILESTONES = (0.6, 0.9)  # fractions of the run (PEPITA's epochs 60 and 90 of 100)
STEP_FACTOR = 0.1


def checked_options(config: Mapping[str, Any], accepted: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``accepted`` (the defaults) updated with ``config``; a key ``accepted`` lacks raises :class:`ValueError`
    naming it and every accepted key, so a typo in a recipe fails instead of being ignored."""
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise ValueError(f"{owner}: unknown rule option(s) {unknown}; accepted: {sorted(accepted)}")
    return {**accepted, **dict(config)}


def make_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float, *, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``adam`` or ``sgd`` (with ``momentum``) over ``params``."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; accepted: {OPTIMIZERS}")


def check_schedule(name: str) -> str:
    """``name`` if it is a known learning-rate schedule."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; accepted: {SCHEDULES}")
    return name


def schedule_factor(name: str, progress: float) -> float:
    """Learning-rate multiplier at ``progress`` in ``[0, 1]``: cosine annealing to 0, 1 for ``constant``, and
    ``step``: x :data:`STEP_FACTOR` at each of :data:`STEP_MILESTONES`."""
    if check_schedule(name) == "constant":
        return 1.0
    if name == "step":
        return float(STEP_FACTOR ** sum(progress >= m for m in STEP_MILESTONES))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def layer_rates(lrs: Any, layers: Sequence[torch.nn.Linear], owner: str) -> list[float]:
    """``lrs`` as floats if it lists one non-negative learning rate per layer of ``layers`` (bottom first)."""
    if not isinstance(lrs, (list, tuple)) or len(lrs) != len(layers) \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in lrs):
        hidden = [layer.out_features for layer in layers[:-1]]
        raise ValueError(f"{owner}: lrs must list {len(layers)} non-negative learning rates, one per weight layer "
                         f"(bottom first: hidden {hidden}, then the output layer), got {lrs!r}")
    return [float(v) for v in lrs]


def layerwise_optimizer(layers: Sequence[torch.nn.Module], lrs: Sequence[float], config: Mapping[str, Any]
                        ) -> torch.optim.Optimizer:
    """One optimizer (``config``'s ``optimizer``, ``momentum``, ``weight_decay``) with a parameter group per layer,
    each at its own learning rate; :func:`scale_layer_rates` applies a schedule to them."""
    optimizer = make_optimizer(layers[0].parameters(), config["optimizer"], lrs[0],
                               momentum=float(config["momentum"]), weight_decay=float(config["weight_decay"]))
    for layer, lr in zip(layers[1:], lrs[1:]):
        optimizer.add_param_group({"params": list(layer.parameters()), "lr": lr})
    return optimizer


def scale_layer_rates(optimizer: torch.optim.Optimizer, lrs: Sequence[float], factor: float) -> None:
    """Set each parameter group of a :func:`layerwise_optimizer` to its base rate times ``factor``."""
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr * factor
