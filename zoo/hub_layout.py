"""The Hugging Face Hub layout of a checkpoint: ``config.json`` + ``model.safetensors`` + ``README.md``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from zoo.api import get_entry
from zoo.checkpoint import load_into
from zoo.errors import ZooError
from zoo.integrity import check_sha256
from zoo.manifest import Entry
from zoo.model_card import render_model_card
from zoo.registry import get_family
from zoo.resolve import raise_if_pending, resolve_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def hub_config(entry: Entry) -> dict[str, Any]:
    """What ``config.json`` holds: enough to rebuild the model and check the weights file."""
    return {"library_name": "bioplausible-zoo", "zoo_id": entry.id, "entrypoint": entry.entrypoint,
            "dataset": entry.dataset, "learning_rule": entry.learning_rule, "arch": entry.arch,
            "input": entry.input, "sha256": entry.sha256, "metrics": entry.metrics, "license": entry.license}


def export_folder(model_id: str, folder: Path, *, source: str = "auto") -> Path:
    """Write a Hub-ready folder for a published checkpoint and return it."""
    entry = get_entry(model_id)
    raise_if_pending(entry)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resolve_file(entry, source), folder / WEIGHTS_NAME)
    check_sha256(folder / WEIGHTS_NAME, entry.sha256 or "")
    (folder / CONFIG_NAME).write_text(json.dumps(hub_config(entry), indent=2) + "\n")
    (folder / "README.md").write_text(render_model_card(entry))
    return folder


def from_hub(repo_id: str, *, revision: str | None = None, filename: str = WEIGHTS_NAME,
             expected_sha256: str | None = None) -> nn.Module:
    """Load a model from a Hub repository in this layout (honours ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``).

    The weights are checked against ``expected_sha256`` when given, else against ``config.json``'s hash.
    """
    from zoo.hf_hub import hf_download

    config = json.loads(hf_download(repo_id, CONFIG_NAME, revision).read_text())
    for key in ("entrypoint", "arch", "sha256"):
        if key not in config:
            raise ZooError(f"{repo_id}/{CONFIG_NAME} has no {key!r}: not a bioplausible-zoo repository")
    if expected_sha256 is not None and config["sha256"] != expected_sha256:
        raise ZooError(f"{repo_id}/{CONFIG_NAME} describes weights with sha256 {config['sha256']}, "
                       f"but the manifest expects {expected_sha256}")
    path = check_sha256(hf_download(repo_id, filename, revision), config["sha256"])
    model = get_family(config["entrypoint"]).build_model(config["arch"])
    return load_into(model, path).eval()

