"""Build hook: the wheel carries the weights manifest as package data (``zoo/weights_manifest.json``).

The top-level ``weights_manifest.json`` stays the one file people edit; every build copies it into the package, so
an installed ``zoo`` knows every checkpoint and fetches the files by URL, the torch hub cache or the Hugging Face Hub.
All metadata is in ``pyproject.toml``.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MANIFEST = "weights_manifest.json"


class BuildWithManifest(build_py):
    """``build_py`` that also copies the top-level manifest into the built ``zoo`` package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "zoo" / MANIFEST
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).resolve().parent / MANIFEST, target)


setup(cmdclass={"build_py": BuildWithManifest})
