"""The weights manifest: one JSON file that lists every checkpoint, validated on load.

A *published* entry points to a safetensors file and carries its hash, size and measured metrics.
A *pending* entry (a checkpoint not trained yet) carries the recipe that will produce it, and neither file nor
metrics. :func:`pending_entry` and :func:`published_entry` assemble entries; nothing else writes their fields.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from zoo.data.catalog import DATASETS
from zoo.errors import ManifestError
from zoo.evaluation.metric_grid import (
    ATTACK_MODELS,
    ATTACKS,
    LOGIT_TEMPERATURES,
    NOISE_SIGMAS,
    attack_epsilons,
    fgsm_epsilons,
)
from zoo.files import atomic_write_text

SCHEMA_VERSION = 1
DATASET_TAGS = tuple(DATASETS)
WEIGHTS_URL = "https://github.com/bioplausible-zoo/bioplausible-zoo/releases/download/weights-v1/"
HF_ORG = "bioplausible-zoo"
HF_FILENAME = "model.safetensors"
LICENSE = "MIT"
STATUSES = ("published", "pending")

_ID_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SCALAR_LIST = re.compile(r"\[([^\[\]{}]*)\]")  # JSON lists of scalars, written on one line
_COMMON_FIELDS = ("id", "entrypoint", "dataset", "learning_rule", "status", "arch", "input", "recipe", "hf", "license")
_PUBLISHED_FIELDS = ("file", "sha256", "size_bytes", "num_params", "metrics", "url")
_PUBLISHED_RECIPE_FIELDS = ("command", "config", "seed", "epochs", "wall_time_s", "hardware", "torch_version",
                            "git_commit")
_PENDING_RECIPE_FIELDS = ("command", "config", "seed", "epochs")


@dataclass(frozen=True)
class Entry:
    """One checkpoint of the manifest (see the README for the meaning of each field)."""

    id: str
    entrypoint: str
    dataset: str
    learning_rule: str
    status: str
    arch: dict[str, Any]
    input: dict[str, Any]
    recipe: dict[str, Any]
    hf: dict[str, str]
    license: str
    file: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    num_params: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    pending_reason: str | None = None
    location: Path | None = field(default=None, compare=False)
    """Where the checkpoint of an entry read from a training run's folder lies (:mod:`zoo.weights.run_folder`);
    ``None`` for the manifest's entries, whose files are resolved from the checkout, cache, URL or Hub."""

    @property
    def published(self) -> bool:
        return self.status == "published"

    @property
    def name(self) -> str:
        """How tables and pictures name this model: its id, or for an entry read from a training run's folder, that
        folder (a run shares its id with the published checkpoint of its family and dataset, and with other runs)."""
        return self.id if self.location is None else str(self.location.parent)

    @property
    def filename(self) -> str:
        """Base name of the checkpoint file (also its name in the download cache)."""
        if self.file is None:
            raise ManifestError(f"{self.id} is {self.status} and has no file")
        return Path(self.file).name

    def to_dict(self) -> dict[str, Any]:
        """The entry as it is written in the manifest (fields that do not apply are left out)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _COMMON_FIELDS}
        if self.published:
            out.update({name: getattr(self, name) for name in _PUBLISHED_FIELDS})
        else:
            out["pending_reason"] = self.pending_reason
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Entry":
        """Validate one manifest entry; raise :class:`ManifestError` naming the field that is wrong."""
        if not isinstance(raw, Mapping):
            raise ManifestError(f"manifest entry must be an object, got {type(raw).__name__}")
        where = f"manifest entry {raw.get('id', '<no id>')!r}"
        _require(raw, _COMMON_FIELDS, where)
        _check(isinstance(raw["id"], str) and _ID_RE.match(raw["id"]) is not None, where, "id",
               "'<entrypoint>.<dataset>' in lowercase letters, digits and '_'", raw["id"])
        _check(raw["dataset"] in DATASET_TAGS, where, "dataset", f"one of {DATASET_TAGS}", raw["dataset"])
        _check(raw["id"] == f"{raw['entrypoint']}.{raw['dataset']}", where, "id",
               f"'{raw['entrypoint']}.{raw['dataset']}' (entrypoint.dataset)", raw["id"])
        _check(raw["status"] in STATUSES, where, "status", f"one of {STATUSES}", raw["status"])
        for name in ("learning_rule", "license", "entrypoint"):
            _check(isinstance(raw[name], str) and raw[name] != "", where, name, "a non-empty string", raw[name])
        for name in ("arch", "input", "recipe", "hf"):
            _check(isinstance(raw[name], Mapping), where, name, "an object", raw[name])
        _require(raw["input"], ("shape", "range"), f"{where}: input")
        _require(raw["hf"], ("repo_id", "filename", "revision"), f"{where}: hf")
        if raw["status"] == "published":
            _validate_published(raw, where)
        else:
            _require(raw["recipe"], _PENDING_RECIPE_FIELDS, f"{where}: recipe")
            _check(isinstance(raw.get("pending_reason"), str) and raw["pending_reason"] != "", where,
                   "pending_reason", "a sentence saying why the checkpoint is not published", raw.get("pending_reason"))
            extra = [name for name in _PUBLISHED_FIELDS if raw.get(name) not in (None, {})]
            _check(not extra, where, "status", f"no {extra} on a pending entry", "pending")
        known = set(_COMMON_FIELDS) | set(_PUBLISHED_FIELDS) | {"pending_reason"}
        unknown = sorted(set(raw) - known)
        _check(not unknown, where, "fields", f"only {sorted(known)}", unknown)
        return cls(**{k: v for k, v in raw.items()})


def checkpoint_filename(model_id: str, sha256: str) -> str:
    """The file name of a published checkpoint: ``<id>-<first 8 hex digits of its sha256>.safetensors``
    (content-addressed, like torch.hub's ``check_hash`` names; it lives under ``weights/``)."""
    return f"{model_id}-{sha256[:8]}.safetensors"


def _common_fields(entrypoint: str, dataset: str, learning_rule: str, arch: Mapping[str, Any],
                   recipe: Mapping[str, Any]) -> dict[str, Any]:
    model_id = f"{entrypoint}.{dataset}"
    return {"id": model_id, "entrypoint": entrypoint, "dataset": dataset, "learning_rule": learning_rule,
            "arch": dict(arch), "input": {"shape": list(arch["in_shape"]), "range": [0.0, 1.0], "dtype": "float32"},
            "recipe": dict(recipe), "hf": {"repo_id": f"{HF_ORG}/{model_id}", "filename": HF_FILENAME,
                                           "revision": "main"},
            "license": LICENSE}


def pending_entry(entrypoint: str, dataset: str, learning_rule: str, arch: Mapping[str, Any],
                  recipe: Mapping[str, Any], reason: str) -> Entry:
    """The entry of a checkpoint not trained yet: its recipe and why it is pending."""
    return Entry.from_dict({**_common_fields(entrypoint, dataset, learning_rule, arch, recipe), "status": "pending",
                            "pending_reason": reason})


def published_entry(entrypoint: str, dataset: str, learning_rule: str, arch: Mapping[str, Any],
                    recipe: Mapping[str, Any], *, sha256: str, size_bytes: int, num_params: int,
                    metrics: Mapping[str, Any]) -> Entry:
    """The entry of a trained checkpoint whose file (named by :func:`checkpoint_filename`) has this hash."""
    name = checkpoint_filename(f"{entrypoint}.{dataset}", sha256)
    return Entry.from_dict({**_common_fields(entrypoint, dataset, learning_rule, arch, recipe), "status": "published",
                            "file": f"weights/{name}", "sha256": sha256, "size_bytes": size_bytes,
                            "num_params": num_params, "metrics": dict(metrics), "url": WEIGHTS_URL + name})


def _validate_published(raw: Mapping[str, Any], where: str) -> None:
    _require(raw, _PUBLISHED_FIELDS, where)
    _require(raw["recipe"], _PUBLISHED_RECIPE_FIELDS, f"{where}: recipe")
    sha = raw["sha256"]
    _check(isinstance(sha, str) and _HEX64.match(sha) is not None, where, "sha256", "64 lowercase hex digits", sha)
    expected_file = f"weights/{checkpoint_filename(raw['id'], sha)}"
    _check(raw["file"] == expected_file, where, "file", repr(expected_file), raw["file"])
    for name in ("size_bytes", "num_params"):
        _check(isinstance(raw[name], int) and raw[name] > 0, where, name, "a positive integer", raw[name])
    _check(isinstance(raw["url"], str) and raw["url"].startswith(("https://", "http://")), where, "url",
           "an http(s) URL", raw["url"])
    metrics = raw["metrics"]
    _check(isinstance(metrics, Mapping), where, "metrics", "an object", metrics)
    _require(metrics, ("top1", "n_eval", "top1_noise"), f"{where}: metrics")
    _check(_is_percent(metrics["top1"]), where, "metrics.top1", "a percentage in [0, 100]", metrics["top1"])
    _check(isinstance(metrics["n_eval"], int) and metrics["n_eval"] > 0, where, "metrics.n_eval",
           "a positive integer", metrics["n_eval"])
    _check_curve(metrics["top1_noise"], NOISE_SIGMAS, where, "metrics.top1_noise")
    if "top1_fgsm" in metrics:
        _check_curve(metrics["top1_fgsm"], fgsm_epsilons(raw["dataset"]), where, "metrics.top1_fgsm")
    if "robustness" in metrics:
        _check_robustness(metrics["robustness"], raw["dataset"], where)
    if "spike_rate" in metrics:  # spiking families: mean spikes per neuron per image
        rate = metrics["spike_rate"]
        _check(isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0.0 <= rate < float("inf"), where,
               "metrics.spike_rate", "a non-negative number (mean spikes per neuron per image)", rate)


def _check_robustness(block: Any, dataset: str, where: str) -> None:
    """``metrics.robustness``: FGSM and PGD accuracy per attack model (white_box always) at the attack grid."""
    name = "metrics.robustness"
    _check(isinstance(block, Mapping), where, name, "an object", block)
    _require(block, ("n_eval", "top1_clean", "pgd", "transfer_source", "transfer_source_sha256",
                     "logit_temperature", *(f"top1_{a}" for a in ATTACKS)),
             f"{where}: {name}")
    _check(isinstance(block["n_eval"], int) and block["n_eval"] > 0, where, f"{name}.n_eval", "a positive integer",
           block["n_eval"])
    _check(_is_percent(block["top1_clean"]), where, f"{name}.top1_clean", "a percentage", block["top1_clean"])
    for attack in ATTACKS:
        by_model = block[f"top1_{attack}"]
        ok = isinstance(by_model, Mapping) and "white_box" in by_model and set(by_model) <= set(ATTACK_MODELS)
        _check(ok, where, f"{name}.top1_{attack}", f"an object keyed by attack model ({list(ATTACK_MODELS)}, "
               "white_box always)", by_model)
        for model, curve in by_model.items():
            _check_curve(curve, attack_epsilons(dataset), where, f"{name}.top1_{attack}.{model}")
    attacked = set(block[f"top1_{ATTACKS[0]}"])
    _check(all(set(block[f"top1_{a}"]) == attacked for a in ATTACKS), where, f"{name}.top1_*",
           "objects with the same attack models for every attack", {a: block[f"top1_{a}"] for a in ATTACKS})
    temperatures = block["logit_temperature"]
    ok = (isinstance(temperatures, Mapping) and set(temperatures) == attacked
          and all(t in LOGIT_TEMPERATURES for t in temperatures.values()))
    _check(ok, where, f"{name}.logit_temperature", f"an object keyed by the attack models run ({sorted(attacked)}) "
           f"with values among {list(LOGIT_TEMPERATURES)}", temperatures)
    has_transfer = "transfer" in attacked
    _check(has_transfer == isinstance(block["transfer_source"], str), where, f"{name}.transfer_source",
           "the id the transfer attack was crafted on (null without a transfer attack)", block["transfer_source"])
    sha = block["transfer_source_sha256"]
    _check(sha is None if block["transfer_source"] is None else isinstance(sha, str) and bool(_HEX64.match(sha)),
           where, f"{name}.transfer_source_sha256", "the SHA-256 (64 lowercase hex digits) of the transfer source's "
           "checkpoint (null without a transfer attack)", sha)


def _check_curve(curve: Any, keys: tuple[str, ...], where: str, name: str) -> None:
    ok = isinstance(curve, Mapping) and set(curve) == set(keys) and all(_is_percent(v) for v in curve.values())
    _check(ok, where, name, f"an object with keys {list(keys)} and percentages as values", curve)


def _is_percent(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 100.0


def _require(raw: Mapping[str, Any], names: tuple[str, ...], where: str) -> None:
    missing = [name for name in names if name not in raw]
    if missing:
        raise ManifestError(f"{where}: missing required field(s) {missing}")


def _check(ok: bool, where: str, name: str, accepted: str, got: Any) -> None:
    if not ok:
        raise ManifestError(f"{where}: field '{name}' must be {accepted}, got {got!r}")


@dataclass(frozen=True)
class Manifest:
    """All entries of the manifest, by id."""

    entries: dict[str, Entry]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Manifest":
        """Validate a whole manifest document."""
        if not isinstance(raw, Mapping):
            raise ManifestError("the manifest must be a JSON object with 'schema_version' and 'weights'")
        if raw.get("schema_version") != SCHEMA_VERSION:
            raise ManifestError(
                f"manifest schema_version must be {SCHEMA_VERSION}, got {raw.get('schema_version')!r}")
        items = raw.get("weights")
        if not isinstance(items, list):
            raise ManifestError(f"manifest field 'weights' must be a list of entries, got {type(items).__name__}")
        entries: dict[str, Entry] = {}
        for item in items:
            entry = Entry.from_dict(item)
            if entry.id in entries:
                raise ManifestError(f"manifest lists {entry.id!r} twice")
            entries[entry.id] = entry
        return cls(entries)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION,
                "weights": [self.entries[key].to_dict() for key in sorted(self.entries)]}

    def with_entry(self, entry: Entry) -> "Manifest":
        """A copy with ``entry`` added or replacing the entry of the same id."""
        return Manifest({**self.entries, entry.id: entry})


def read_manifest(path: Path) -> Manifest:
    """Read and validate a manifest file."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ManifestError(f"weights manifest not found at {path}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"weights manifest {path} is not valid JSON: {exc}") from None
    try:
        return Manifest.from_dict(raw)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Write the manifest atomically (temporary file, then rename), with stable formatting."""
    path = Path(path)
    text = _SCALAR_LIST.sub(lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)).strip() + "]",
                            json.dumps(manifest.to_dict(), indent=2)) + "\n"
    atomic_write_text(path, text)
    cached_manifest.cache_clear()


@lru_cache(maxsize=4)
def cached_manifest(path: Path) -> Manifest:
    """The validated manifest at ``path``, read once per process."""
    return read_manifest(path)
