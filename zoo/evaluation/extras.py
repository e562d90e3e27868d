"""The optional libraries (the ``analysis``, ``snn`` and ``onnx`` extras), imported only when a feature needs them.

:data:`PACKAGES` is the one list of them: each pip package with the module it is imported as and the zoo extra
that installs it. A command that needs some calls :func:`require` before any other work (a download, a dataset),
so a missing one is reported at once.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from zoo.errors import MissingExtraError

#: pip package -> (module it is imported as, the zoo extra that installs it).
PACKAGES: dict[str, tuple[str, str]] = {
    "matplotlib": ("matplotlib", "analysis"),
    "foolbox": ("foolbox", "analysis"),
    "captum": ("captum", "analysis"),
    "rsatoolbox": ("rsatoolbox", "analysis"),
    "scikit-learn": ("sklearn", "analysis"),
    "snntorch": ("snntorch", "snn"),
    "nir": ("nir", "snn"),
    "nirtorch": ("nirtorch", "snn"),
    "onnx": ("onnx", "onnx"),
}


def optional_import(module: str, purpose: str, package: str, extra: str = "analysis") -> ModuleType:
    """Import ``module`` (from the pip package ``package`` of the zoo's ``extra``); :class:`MissingExtraError`
    saying what needs it and how to install it otherwise."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{purpose} needs {package}, an optional extra: pip install {package} (or pip install "
                                f"'bioplausible-zoo[{extra}]', or -r requirements-extras.txt for the tested pins)"
                                ) from exc


def require(purpose: str, *packages: str) -> None:
    """Import each of ``packages`` (names of :data:`PACKAGES`); the first missing one raises
    :class:`MissingExtraError` saying that ``purpose`` needs it and how to install it."""
    for package in packages:
        module, extra = PACKAGES[package]
        optional_import(module, purpose, package, extra)
