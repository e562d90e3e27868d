"""The Hugging Face Hub layout of a checkpoint: ``config.json`` + ``model.safetensors`` + ``README.md``."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from zoo.api import get_entry
from zoo.errors import ZooError
from zoo.weights.integrity import check_sha256
from zoo.weights.manifest import HF_FILENAME, Entry
from zoo.weights.model_card import render_model_card
from zoo.weights.resolve import hub_config_values, raise_if_pending, resolve_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = HF_FILENAME
LEARNING_CURVE = "learning_curve.png"
ATTACKS_PICTURE = "attacks.png"


def hub_config(entry: Entry) -> dict[str, Any]:
    """What ``config.json`` holds: a copy of the manifest entry's identity, architecture and hash (checked against
    the manifest on every load, :func:`zoo.weights.resolve.check_hub_config`), with its metrics and license."""
    return {"library_name": "bioplausible-zoo", **hub_config_values(entry), "metrics": entry.metrics,
            "license": entry.license}


def card_pictures(entry: Entry, folder: Path) -> dict[str, str]:
    """Draw the checkpoint's recorded learning curve and attack comparison into ``folder`` for its model card;
    return ``{file name: caption}`` of those drawn (none without matplotlib, or without the records)."""
    from zoo.errors import MissingExtraError
    from zoo.evaluation.curves import save_curves
    from zoo.evaluation.plotting import pyplot
    from zoo.evaluation.robustness_plots import save_attack_plot

    try:
        pyplot("the model card's pictures")
    except MissingExtraError:
        return {}
    pictures = {}
    if entry.recipe.get("curve"):
        save_curves([entry], folder / LEARNING_CURVE)
        pictures[LEARNING_CURVE] = "learning curve of the training run"
    if "robustness" in entry.metrics:
        save_attack_plot([entry], folder / ATTACKS_PICTURE, "pgd", title=f"{entry.id}: PGD")
        pictures[ATTACKS_PICTURE] = "PGD accuracy vs ε: white-box, rule gradient, transfer"
    return pictures


def export_folder(model_id: str, folder: Path, *, source: str = "auto", force: bool = False) -> Path:
    """Write a Hub-ready folder (``config.json``, ``model.safetensors``, ``README.md`` and, with matplotlib, the
    card's pictures :func:`card_pictures`) for a published checkpoint and return it.

    A folder that exists and is not empty is refused unless ``force`` (then those files are replaced and nothing
    else is touched). The files are written into a temporary folder beside the target and moved in only once all
    are complete, so a failed export leaves nothing behind.
    """
    entry = get_entry(model_id)
    raise_if_pending(entry)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ZooError(f"export target {folder} is a file; give a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ZooError(f"export target {folder} is not empty; choose an empty or new folder, or pass --force "
                       f"(force=True) to replace {CONFIG_NAME}, {WEIGHTS_NAME} and README.md in it")
    weights = resolve_file(entry, source)
    folder.parent.mkdir(parents=True, exist_ok=True)
    created = not folder.exists()
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.export-"))
    try:
        shutil.copyfile(weights, staging / WEIGHTS_NAME)
        check_sha256(staging / WEIGHTS_NAME, str(entry.sha256))
        (staging / CONFIG_NAME).write_text(json.dumps(hub_config(entry), indent=2) + "\n")
        (staging / "README.md").write_text(render_model_card(entry, card_pictures(entry, staging)))
        if created:
            os.replace(staging, folder)
        else:
            for item in staging.iterdir():
                os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def from_hub(repo_id: str, *, revision: str | None = None) -> nn.Module:
    """Load the checkpoint a Hub repository in this layout holds (honours ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``).

    The repository's ``config.json`` names the checkpoint (``zoo_id``); the model is then loaded exactly as
    ``zoo.load(zoo_id, source="hf")``: built from the manifest entry, with the repository's config checked to agree
    with it field by field and the weights checked against the manifest's SHA-256. A repository whose checkpoint
    the manifest does not list is refused.
    """
    from zoo.api import build_from_entry
    from zoo.weights.hf_hub import hf_download

    where = f"{repo_id}/{CONFIG_NAME}"
    try:
        config = json.loads(hf_download(repo_id, CONFIG_NAME, revision).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("zoo_id"), str):
        raise ZooError(f"{where} has no 'zoo_id': not a bioplausible-zoo repository")
    entry = get_entry(config["zoo_id"])
    hub = {**entry.hf, "repo_id": repo_id, "revision": revision or entry.hf["revision"]}
    moved = Entry(**{**entry.__dict__, "hf": hub})
    return build_from_entry(entry, resolve_file(moved, "hf"))

