"""Where the zoo keeps its files: the checkout, the manifest and the weights cache."""
from __future__ import annotations

import os
from pathlib import Path

import torch.hub

REPO_ROOT = Path(__file__).resolve().parent.parent


def manifest_path() -> Path:
    """The weights manifest: ``$ZOO_MANIFEST`` if set, else ``weights_manifest.json`` in the checkout."""
    return Path(os.environ.get("ZOO_MANIFEST", REPO_ROOT / "weights_manifest.json"))


def weights_cache_dir() -> Path:
    """torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), shared with torchvision and timm."""
    return Path(torch.hub.get_dir()) / "checkpoints"
