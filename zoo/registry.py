"""Model families: an architecture with a learning rule attached, known by its hub entrypoint name."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import Tensor, nn

from zoo.data import DATASETS
from zoo.errors import UnknownModelError
from zoo.trainer import Trainer


@dataclass(frozen=True)
class Family:
    """One hub entrypoint: how to build the network and how its learning rule trains it.

    ``build`` takes the ``arch`` record (``in_shape``, ``num_classes``, ``mean``, ``std`` and the
    family's own keys) and returns an untrained model; ``trainer`` is the rule's training step;
    ``alignment`` (where the rule has weight updates to compare) measures, per layer, the angle in degrees
    between the rule's update and the true backprop gradient on a batch.
    """

    name: str
    learning_rule: str
    summary: str
    build: Callable[..., nn.Module]
    trainer: type[Trainer]
    default_arch: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""
    alignment: Callable[[nn.Module, Tensor, Tensor], dict[str, float]] | None = None

    def arch_for(self, dataset: str | None = None, *, in_shape: tuple[int, int, int] | None = None,
                 num_classes: int | None = None, **overrides: Any) -> dict[str, Any]:
        """The full ``arch`` record for a dataset (or an explicit input shape and class count)."""
        if dataset is not None:
            info = DATASETS.get(dataset)
            if info is None:
                raise ValueError(f"unknown dataset {dataset!r}; accepted: {sorted(DATASETS)}")
            base: dict[str, Any] = {"in_shape": list(info.in_shape), "num_classes": info.num_classes,
                                    "mean": list(info.mean), "std": list(info.std)}
        elif in_shape is not None and num_classes is not None:
            channels = int(in_shape[0])
            base = {"in_shape": [int(d) for d in in_shape], "num_classes": int(num_classes),
                    "mean": [0.5] * channels, "std": [0.5] * channels}
        else:
            raise ValueError(f"{self.name}: give dataset= (one of {sorted(DATASETS)}) or both in_shape= and "
                             "num_classes= to build an untrained model")
        if in_shape is not None:
            base["in_shape"] = [int(d) for d in in_shape]
        if num_classes is not None:
            base["num_classes"] = int(num_classes)
        unknown = sorted(set(overrides) - set(self.default_arch))
        if unknown:
            raise ValueError(f"{self.name}: unknown architecture option(s) {unknown}; "
                             f"accepted: {sorted(self.default_arch)}")
        return {**base, **self.default_arch, **overrides}

    def build_model(self, arch: Mapping[str, Any]) -> nn.Module:
        """An untrained model for an ``arch`` record."""
        kwargs = dict(arch)
        kwargs["in_shape"] = tuple(kwargs["in_shape"])
        return self.build(**kwargs)


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family to the registry (each name once)."""
    if family.name in _FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def families() -> dict[str, Family]:
    """Every registered family, by entrypoint name."""
    import zoo.rules  # noqa: F401  (importing the rules registers their families)

    return dict(sorted(_FAMILIES.items()))


def get_family(name: str) -> Family:
    """The family of an entrypoint name; an unknown name raises with the closest known names."""
    known = families()
    if name not in known:
        raise UnknownModelError(f"unknown model family {name!r}. {suggest(name, known)}")
    return known[name]


def suggest(name: str, choices: Mapping[str, Any] | list[str]) -> str:
    """'Did you mean ...?' text listing close matches, or all choices when none is close."""
    options = sorted(choices)
    by_lower = {option.lower(): option for option in options}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)]
    if close:
        return f"Did you mean: {', '.join(close)}?"
    return f"Known: {', '.join(options)}."
