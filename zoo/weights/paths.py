"""Where the zoo keeps its files: the checkout, the manifest and the weights cache."""
from __future__ import annotations

import os
from pathlib import Path

import torch.hub

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT.parent


MANIFEST_NAME = "weights_manifest.json"
PACKAGED_MANIFEST = PACKAGE_ROOT / MANIFEST_NAME


def manifest_path() -> Path:
    """The weights manifest: ``$ZOO_MANIFEST`` if set, else ``weights_manifest.json`` of the checkout ``zoo/`` lives
    in, else the copy an installed package carries (``zoo/weights_manifest.json``, put there by the build)."""
    if "ZOO_MANIFEST" in os.environ:
        return Path(os.environ["ZOO_MANIFEST"])
    checkout = REPO_ROOT / MANIFEST_NAME
    return checkout if checkout.is_file() or not PACKAGED_MANIFEST.is_file() else PACKAGED_MANIFEST


def zoo_cache_home() -> Path:
    """The zoo's own cache folder: ``$XDG_CACHE_HOME/bioplausible-zoo`` (``~/.cache/bioplausible-zoo`` when
    ``XDG_CACHE_HOME`` is unset, empty or relative)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    cache = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return cache / "bioplausible-zoo"


def weights_cache_dir() -> Path:
    """torch.hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), shared with torchvision and timm."""
    return Path(torch.hub.get_dir()) / "checkpoints"
