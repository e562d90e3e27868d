"""Training recipes: ``training/recipes/<entrypoint>.json``, shared defaults plus per-dataset overrides.

A recipe states only what differs from the defaults declared in the code: the family's architecture options
(:attr:`zoo.registry.Family.default_arch`), its trainer's rule options (``Trainer.options``) and
:class:`zoo.engine.fit.FitConfig`'s fields. :func:`effective_config` fills those in.
"""
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


def effective_config(entrypoint: str, dataset: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a resolved recipe) with every default filled in: the full ``arch`` record, every ``fit`` field and
    every rule option. Two configs that train the same model have the same effective config."""
    from dataclasses import fields

    from zoo.engine.fit import FitConfig
    from zoo.engine.options import checked_options
    from zoo.registry import get_family

    family = get_family(entrypoint)
    fit = dict(config.get("fit", {}))
    fit_defaults = {f.name: f.default for f in fields(FitConfig) if f.name not in ("epochs", "rule")}
    rule = checked_options(fit.pop("rule", {}), family.trainer.options, f"{entrypoint} recipe")
    return {"arch": family.arch_for(dataset, **config.get("arch", {})),
            "fit": {**fit_defaults, **fit, "rule": rule}, "init": config.get("init")}


def apply_override(config: dict[str, Any], override: str) -> None:
    """Apply one ``KEY=VALUE`` override (``fit.rule.lr=0.01``; the value is JSON, else a string) in place.

    The path must lead through existing sections (``arch``, ``fit``, ``fit.rule``, ``init``); the last key may be
    new, and is then checked by the architecture or trainer that reads it.
    """
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ValueError(f"--set takes KEY=VALUE (e.g. fit.rule.lr=0.01), got {override!r}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    *path, last = key.split(".")
    node: Any = config
    for part in path:
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            raise ValueError(f"--set {override}: the recipe has no section {'.'.join(path)!r}; sections: "
                             f"{sorted(k for k, v in config.items() if isinstance(v, dict))}")
        node = node[part]
    node[last] = value
