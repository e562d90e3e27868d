"""Training recipes: ``training/recipes/<entrypoint>.json``, shared defaults plus per-dataset overrides, and
``selected_on``: how the recipe was chosen (:data:`SELECTED_ON`).

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
# How a recipe was chosen: on a validation split held out of the training images (training.train --val N), by reading
# the test top-1 of trial runs (how every recipe before the validation protocol was tuned), or not at all (a
# published configuration taken as it is).
SELECTED_ON = ("validation", "test", "none")


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


def load_recipe(entrypoint: str, dataset: str, path: Path | None = None) -> dict[str, Any]:
    """The resolved recipe of ``entrypoint`` on ``dataset``: ``{"arch": ..., "fit": ..., "init": ...}``, from the
    zoo's recipe of the family or from the recipe file ``path`` (anywhere, in the same format)."""
    if path is None:
        path = recipe_path(entrypoint)
        if not path.is_file():
            known = sorted(p.stem for p in RECIPES_DIR.glob("*.json"))
            raise FileNotFoundError(f"no recipe for {entrypoint!r} at {path}; recipes exist for {known} (a recipe "
                                    "file of your own: --recipe FILE)")
    elif not Path(path).is_file():
        raise FileNotFoundError(f"no recipe file {path}")
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"recipe {path} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"recipe {path} must be a JSON object with 'selected_on', 'defaults' and 'datasets'")
    if raw.get("entrypoint", entrypoint) != entrypoint:
        raise ValueError(f"recipe {path} is for {raw['entrypoint']!r}, not {entrypoint!r}")
    if raw.get("selected_on") not in SELECTED_ON:
        raise ValueError(f"recipe {path.name}: selected_on must be one of {SELECTED_ON} (how the recipe was chosen), "
                         f"got {raw.get('selected_on')!r}")
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


def override_keys(entrypoint: str, dataset: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Every key ``--set`` may change, dotted (``arch.dropout``, ``fit.epochs``, ``fit.rule.lr``, ``init``), with
    its value in ``config`` (a resolved recipe) or its default."""
    effective = effective_config(entrypoint, dataset, config)
    from zoo.registry import get_family

    arch_keys = get_family(entrypoint).default_arch
    keys: dict[str, Any] = {f"arch.{k}": effective["arch"][k] for k in arch_keys}
    keys.update({f"fit.{k}": v for k, v in effective["fit"].items() if k != "rule"})
    keys.update({f"fit.rule.{k}": v for k, v in effective["fit"]["rule"].items()})
    keys["init"] = effective["init"]
    return keys


_KINDS = ((bool, "true or false", "booleans"), (int, "an integer", "integers"), (float, "a number", "numbers"),
          (dict, "a JSON object", "JSON objects"), (str, "a string", "strings"))


def _type_name(value: Any, plural: bool = False) -> str:
    if isinstance(value, (list, tuple)):
        return "a JSON list" + (f" of {_type_name(value[0], plural=True)}" if value else "")
    for kind, one, many in _KINDS:
        if isinstance(value, kind):
            return many if plural else one
    return "any JSON value"


def _same_kind(value: Any, default: Any) -> bool:
    """Whether ``value`` may replace ``default``: the same JSON type (an integer where a number is expected; any
    value where the default is null; lists element by element)."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list) and (not default or all(_same_kind(v, default[0]) for v in value))
    return isinstance(value, type(default))


def apply_override(config: dict[str, Any], override: str, accepted: Mapping[str, Any]) -> None:
    """Apply one ``KEY=VALUE`` override (``fit.rule.lr=0.01``; the value is JSON, else a string) in place.

    ``KEY`` must be one of ``accepted`` (:func:`override_keys`) and ``VALUE`` of the same JSON type as its current
    value, or ``KEY`` a section (``arch``, ``fit``, ``fit.rule``) and ``VALUE`` a JSON object of its keys; anything
    else raises :class:`ValueError` naming what is accepted.
    """
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ValueError(f"--set takes KEY=VALUE (e.g. fit.rule.lr=0.01), got {override!r}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    section = [k for k in accepted if k.startswith(key + ".")]
    if section and isinstance(value, dict):  # a whole section, e.g. fit.rule={"lr": 0.01}: each key checked
        for name, item in value.items():
            apply_override(config, f"{key}.{name}={json.dumps(item)}", accepted)
        return
    if key not in accepted:
        from zoo.registry import suggest

        raise ValueError(f"--set {override}: unknown key {key!r}. {suggest(key, list(accepted))} "
                         "(--list-options prints every key with its value)")
    default = accepted[key]
    if not _same_kind(value, default):
        raise ValueError(f"--set {override}: {key} takes {_type_name(default)} (now {json.dumps(default)}), "
                         f"got {json.dumps(value)}")
    *path, last = key.split(".")
    node: Any = config
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
