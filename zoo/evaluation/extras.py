"""The optional libraries of the ``analysis`` extra, imported only when a feature needs them."""
from __future__ import annotations

import importlib
from types import ModuleType

from zoo.errors import MissingExtraError


def optional_import(module: str, purpose: str, package: str) -> ModuleType:
    """Import ``module`` (from the pip package ``package``); :class:`MissingExtraError` saying what needs it and
    how to install it otherwise."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{purpose} needs {package}, an optional extra: pip install {package} (or pip install "
                                "'bioplausible-zoo[analysis]', or -r requirements-extras.txt for the tested pins)"
                                ) from exc
