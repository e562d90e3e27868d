"""The optional libraries (the ``analysis`` and ``snn`` extras), imported only when a feature needs them."""
from __future__ import annotations

import importlib
from types import ModuleType

from zoo.errors import MissingExtraError


def optional_import(module: str, purpose: str, package: str, extra: str = "analysis") -> ModuleType:
    """Import ``module`` (from the pip package ``package`` of the zoo's ``extra``); :class:`MissingExtraError`
    saying what needs it and how to install it otherwise."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{purpose} needs {package}, an optional extra: pip install {package} (or pip install "
                                f"'bioplausible-zoo[{extra}]', or -r requirements-extras.txt for the tested pins)"
                                ) from exc
