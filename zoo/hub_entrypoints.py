"""The ``hubconf.py`` entrypoints: one per registered model family, each with a docstring for ``torch.hub.help``
listing its checkpoints."""
from __future__ import annotations

import warnings
from typing import Any, Callable

from torch import nn

from zoo.api import create_model, manifest
from zoo.registry import families, get_family


def _docstring(name: str) -> str:
    family = get_family(name)
    rows = []
    for entry in sorted(manifest().entries.values(), key=lambda e: e.id):
        if entry.entrypoint == name:
            result = f"top-1 {entry.metrics['top1']:.2f}%" if entry.published else f"pending: {entry.pending_reason}"
            rows.append(f"                {entry.dataset!r}: {result}")
    weights = "\n".join(rows) or "                (no checkpoint yet)"
    options = ", ".join(f"{k}={v!r}" for k, v in family.default_arch.items()) or "none"
    return f"""{family.summary}

    Learning rule: {family.learning_rule}.{f" {family.paper}." if family.paper else ""}

    Args:
        weights: dataset tag of the pretrained checkpoint, "DEFAULT" ({family.default_dataset!r}) or None for an
            untrained model.
            Available:
{weights}
        dataset: with weights=None, shape the model for this dataset ("mnist", "fashion_mnist", "cifar10").
        in_shape, num_classes: with weights=None, an explicit input shape (C, H, W) and class count.
        weights_source: "auto" (checkout, torch hub cache, URL, Hugging Face Hub), "local", "cache", "url" or "hf".
        pretrained: torch.hub's legacy switch; True means weights="DEFAULT", False means weights=None
            (a FutureWarning says so).
        **arch: with weights=None, architecture options (defaults: {options}).

    Returns:
        The model in eval mode on the CPU. It takes float images [N, C, H, W] in [0, 1] (use
        zoo.get_weights(id).transforms() for uint8 images) and returns logits [N, num_classes].
    """


def legacy_pretrained(name: str, pretrained: bool) -> str | None:
    """``pretrained=True`` / ``False`` (torch.hub's old keyword) as ``weights``, with a :class:`FutureWarning`,
    as torchvision maps it."""
    if not isinstance(pretrained, bool):
        raise ValueError(f"{name}: pretrained must be True or False, got {pretrained!r}; prefer weights=")
    weights = "DEFAULT" if pretrained else None
    warnings.warn(f"{name}: 'pretrained' is deprecated; use weights={weights!r} instead", FutureWarning, stacklevel=3)
    return weights


def make_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The hub entrypoint function of family ``name``."""
    def entrypoint(weights: str | None = "DEFAULT", *, dataset: str | None = None,
                   in_shape: tuple[int, int, int] | None = None, num_classes: int | None = None,
                   weights_source: str = "auto", pretrained: bool | None = None, **arch: Any) -> nn.Module:
        if pretrained is not None:
            weights = legacy_pretrained(name, pretrained)
        return create_model(name, weights, dataset=dataset, in_shape=in_shape, num_classes=num_classes,
                            source=weights_source, **arch)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = _docstring(name)
    return entrypoint


def entrypoints() -> dict[str, Callable[..., nn.Module]]:
    """Every family's entrypoint, by name (what ``hubconf.py`` exports)."""
    return {name: make_entrypoint(name) for name in families()}
