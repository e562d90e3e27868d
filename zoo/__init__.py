"""bioplausible-zoo: pretrained checkpoints of biologically plausible learning rules.

    import zoo
    zoo.list_models()                      # ["bp_mlp.mnist", ...]
    model = zoo.load("bp_mlp.mnist")       # eval mode, CPU, hash-checked
    x = zoo.get_weights("bp_mlp.mnist").transforms()(uint8_images)

The package's parts: ``zoo.api`` (this public API) and ``zoo.cli`` (``python -m zoo``); ``zoo.registry`` (the
families, generated from ``zoo.rules`` x ``zoo.archs``); ``zoo.engine`` (training); ``zoo.weights`` (where
weights come from and how they are checked); ``zoo.data``; ``zoo.evaluation``. Importing ``zoo`` loads torch and
the manifest code; data readers, downloads and the Hugging Face client load when first used.
"""
from typing import Any

from zoo.api import Weights, create_model, get_weights, list_models, load

__all__ = ["Weights", "create_model", "export_folder", "from_hub", "get_weights", "list_models", "load"]


def __getattr__(name: str) -> Any:
    """``export_folder`` and ``from_hub`` load the Hub layout code on first use."""
    if name in ("export_folder", "from_hub"):
        from zoo.weights import hub_layout

        return getattr(hub_layout, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
