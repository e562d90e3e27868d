"""Publishing a test model the way a training run does, into a manifest of its own that the zoo then reads."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from zoo.weights.manifest import Entry


def publish_test_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family_name: str, dataset: str,
                       arch: dict[str, Any], model: nn.Module, metrics: dict[str, Any], epochs: int = 0) -> Entry:
    """Write ``model`` as a run folder (``training.train``'s writer) and install it (``training.publish``'s copy and
    manifest update; a test model is no recipe run, so :func:`training.publish.check_run` would refuse it) into
    ``tmp_path/zoo/weights_manifest.json``, which ``$ZOO_MANIFEST`` then points the zoo at; return its entry."""
    from training.publish import install_run, read_run_entry
    from training.train import write_run_output
    from zoo.registry import get_family

    recipe = {"command": f"python -m training.train {family_name} --dataset {dataset}", "config": {}, "seed": 0,
              "epochs": epochs, "wall_time_s": 0.0, "hardware": "test", "torch_version": torch.__version__,
              "git_commit": "test"}
    manifest = tmp_path / "zoo" / "weights_manifest.json"
    manifest.parent.mkdir()
    monkeypatch.setenv("ZOO_MANIFEST", str(manifest))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run_output(run_dir, get_family(family_name), dataset, arch, recipe, metrics, model)
    return install_run(*read_run_entry(run_dir), manifest)
