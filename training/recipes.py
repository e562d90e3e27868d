"""Training recipes: ``training/recipes/<entrypoint>.json``, shared defaults plus per-dataset overrides."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of two JSON objects (``override`` wins)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def recipe_path(entrypoint: str) -> Path:
    """Where the recipe of an entrypoint lives."""
    return RECIPES_DIR / f"{entrypoint}.json"


def load_recipe(entrypoint: str, dataset: str) -> dict[str, Any]:
    """The resolved recipe of ``entrypoint`` on ``dataset``: ``{"arch": ..., "fit": ..., "init": ...}``."""
    path = recipe_path(entrypoint)
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.json"))
        raise FileNotFoundError(f"no recipe for {entrypoint!r} at {path}; recipes exist for {known}")
    raw = json.loads(path.read_text())
    datasets = raw.get("datasets", {})
    if dataset not in datasets:
        raise ValueError(f"recipe {path.name} has no section for dataset {dataset!r}; it has {sorted(datasets)}")
    resolved = merge(raw.get("defaults", {}), datasets[dataset])
    resolved.setdefault("arch", {})
    resolved.setdefault("init", None)
    return resolved


def recipe_datasets(entrypoint: str) -> list[str]:
    """The datasets an entrypoint's recipe covers."""
    return sorted(json.loads(recipe_path(entrypoint).read_text()).get("datasets", {}))
