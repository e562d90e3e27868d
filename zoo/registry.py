"""Model families, generated: every rule declared under ``zoo/rules/`` applied to the architectures under
``zoo/archs/`` it trains, plus the networks rules build themselves. The registry is the only list of families;
hubconf, the CLI, tests and benchmarks iterate it."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, TypeVar

from torch import nn

from zoo.archs.base import Architecture
from zoo.archs.options import check_arch, check_in_shape, check_num_classes
from zoo.data.catalog import DATASETS
from zoo.engine.trainer import Trainer
from zoo.errors import UnknownModelError
from zoo.plugins import Plugin, plugin_architectures, plugin_rules, skip
from zoo.rules.base import Alignment, Rule

CFG_ATTRIBUTE = "zoo_cfg"


@dataclass(frozen=True)
class ModelCfg:
    """What a zoo model is, carried on the model as ``model.zoo_cfg`` (like timm's ``pretrained_cfg``).

    ``family`` is its hub entrypoint name, ``arch`` the full record it was built from (as in the manifest); a
    pretrained model also knows its checkpoint ``id`` and ``dataset``. :func:`zoo.engine.fit.fit` and ``export-hf``
    read it, so a model needs nothing handed alongside it.
    """

    family: str
    arch: Mapping[str, Any]
    id: str | None = None
    dataset: str | None = None


@dataclass(frozen=True)
class Family:
    """One hub entrypoint, ``<rule>_<architecture>``: how to build the network and how its learning rule trains it.

    ``build`` takes the ``arch`` record (``in_shape``, ``num_classes``, ``mean``, ``std`` and the family's own
    keys) and returns an untrained model; ``trainer`` is the rule's training step; ``alignment`` (where the rule
    has weight updates to compare) measures, per layer, the angle in degrees between the rule's update and the true
    backprop gradient on a batch. ``datasets`` are those the family has recipes and manifest entries for.
    ``architecture`` is the registered architecture the network is (``None`` for a network of the rule's own).
    ``plugin`` names the installed plugin its rule or architecture comes from (:mod:`zoo.plugins`); ``None`` for the
    zoo's own.
    """

    name: str
    rule: str
    architecture: str | None
    learning_rule: str
    summary: str
    build: Callable[..., nn.Module]
    trainer: type[Trainer]
    default_arch: Mapping[str, Any] = field(default_factory=dict)
    datasets: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10")
    paper: str = ""
    alignment: Alignment | None = None
    plugin: str | None = None

    def arch_for(self, dataset: str | None = None, *, in_shape: tuple[int, int, int] | None = None,
                 num_classes: int | None = None, **overrides: Any) -> dict[str, Any]:
        """The full ``arch`` record for a dataset (or an explicit input shape and class count), every value checked
        (:func:`zoo.archs.options.check_arch`): a bad one raises :class:`ValueError` naming it and what is accepted."""
        if in_shape is not None:
            check_in_shape(self.name, in_shape)
        if num_classes is not None:
            check_num_classes(self.name, num_classes)
        if dataset is not None:
            info = DATASETS.get(dataset)
            if info is None:
                raise ValueError(f"unknown dataset {dataset!r}; accepted: {sorted(DATASETS)}")
            base: dict[str, Any] = {"in_shape": list(info.in_shape), "num_classes": info.num_classes,
                                    "mean": list(info.mean), "std": list(info.std)}
        elif in_shape is not None and num_classes is not None:
            base = {"mean": [0.5] * in_shape[0], "std": [0.5] * in_shape[0]}
        else:
            raise ValueError(f"{self.name}: give dataset= (one of {sorted(DATASETS)}) or both in_shape= and "
                             "num_classes= to build an untrained model")
        if in_shape is not None:
            base["in_shape"] = list(in_shape)
        if num_classes is not None:
            base["num_classes"] = num_classes
        unknown = sorted(set(overrides) - set(self.default_arch))
        if unknown:
            raise ValueError(f"{self.name}: unknown architecture option(s) {unknown}; "
                             f"accepted: {sorted(self.default_arch)}")
        arch = {**base, **self.default_arch, **overrides}
        check_arch(self.name, arch, self.default_arch)
        return arch

    @property
    def default_dataset(self) -> str:
        """The dataset ``weights="DEFAULT"`` means: the first of :attr:`datasets` (MNIST where the family has it,
        else its only dataset, e.g. CIFAR-10 for the CIFAR conv nets)."""
        return self.datasets[0]

    def build_model(self, arch: Mapping[str, Any], *, model_id: str | None = None,
                    dataset: str | None = None) -> nn.Module:
        """An untrained model for an ``arch`` record, carrying its :class:`ModelCfg` as ``model.zoo_cfg``."""
        kwargs = dict(arch)
        kwargs["in_shape"] = tuple(kwargs["in_shape"])
        model = self.build(**kwargs)
        setattr(model, CFG_ATTRIBUTE, ModelCfg(family=self.name, arch=dict(arch), id=model_id, dataset=dataset))
        return model


def _build_layered(rule: Rule, architecture: Architecture, in_shape: tuple[int, int, int], num_classes: int,
                   mean: list[float], std: list[float], **options: Any) -> nn.Module:
    """``architecture``'s network built from the layer kit of ``rule`` (the rule's own keys go to the kit)."""
    assert rule.layers is not None
    rule_options = {key: options.pop(key) for key in list(options) if key in rule.options}
    kit = rule.layers(num_classes=num_classes, **rule_options)
    return architecture.network(in_shape, num_classes, mean, std, layers=kit, **options)


def _join_papers(*papers: str) -> str:
    return "; ".join(p for p in papers if p)


def rule_families(rule: Rule, architectures: Mapping[str, Architecture]) -> list[Family]:
    """The families of one rule: one per architecture it trains through its layer kit, one per variant."""
    out: list[Family] = []
    if rule.layers is not None:
        names = sorted(architectures) if rule.architectures is None else list(rule.architectures)
        unknown = sorted(set(names) - set(architectures)) + sorted(set(rule.arch_defaults) - set(names))
        if unknown:
            raise ValueError(f"rule {rule.name!r} names unknown architecture(s) {unknown}; "
                             f"known: {sorted(architectures)}")
        for arch_name in names:
            architecture = architectures[arch_name]
            changed = rule.arch_defaults.get(arch_name, {})
            if set(changed) - set(architecture.options):
                raise ValueError(f"rule {rule.name!r}: {sorted(set(changed) - set(architecture.options))} are not "
                                 f"options of architecture {arch_name!r} ({sorted(architecture.options)})")
            out.append(Family(
                name=f"{rule.name}_{arch_name}", rule=rule.name, architecture=arch_name,
                learning_rule=rule.learning_rule, summary=f"{architecture.summary} {rule.description}",
                build=functools.partial(_build_layered, rule, architecture), trainer=rule.trainer,
                default_arch={**architecture.options, **rule.options, **changed}, datasets=architecture.datasets,
                paper=_join_papers(rule.paper, architecture.paper), alignment=rule.alignment))
    for variant_name, variant in rule.variants.items():
        out.append(Family(
            name=f"{rule.name}_{variant_name}", rule=rule.name, architecture=variant.extends,
            learning_rule=variant.learning_rule or rule.learning_rule, summary=variant.summary, build=variant.build,
            trainer=variant.trainer or rule.trainer, default_arch=dict(variant.options), datasets=variant.datasets,
            paper=rule.paper if variant.paper is None else variant.paper,
            alignment=variant.alignment or rule.alignment))
    return out


def _modules(package: str) -> list[Any]:
    root = importlib.import_module(package)
    return [importlib.import_module(f"{package}.{info.name}")
            for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name) if info.name != "base"]


T = TypeVar("T", Architecture, Rule)


def _with_plugins(built_in: dict[str, T], plugins: Iterable[tuple[Plugin, T]],
                  kind: str) -> tuple[dict[str, T], dict[str, Plugin]]:
    """``built_in`` with the plugins' ``kind`` (rule or architecture) added by name, sorted, and the plugin of each
    added one; a plugin whose name is taken is skipped with one line."""
    found = dict(built_in)
    origins: dict[str, Plugin] = {}
    for plugin, item in plugins:
        if item.name in found:
            skip(plugin, f"{kind} {item.name!r} is taken by {origins.get(item.name, 'the zoo')}")
            continue
        found[item.name] = item
        origins[item.name] = plugin
    return dict(sorted(found.items())), origins


@functools.cache
def _architectures() -> tuple[dict[str, Architecture], dict[str, Plugin]]:
    """Every architecture by name (the ``ARCHITECTURE`` of each module under ``zoo/archs/``, then the plugins'),
    and the plugin of each plugin architecture."""
    found = {m.ARCHITECTURE.name: m.ARCHITECTURE for m in _modules("zoo.archs") if hasattr(m, "ARCHITECTURE")}
    return _with_plugins(found, plugin_architectures(), "architecture")


def architectures() -> dict[str, Architecture]:
    """Every architecture, by name: the ``ARCHITECTURE`` of each module under ``zoo/archs/`` and of each plugin."""
    return dict(_architectures()[0])


@functools.cache
def _rules() -> tuple[dict[str, Rule], dict[str, Plugin]]:
    """Every rule by name (the ``RULES`` of each module under ``zoo/rules/``, then the plugins'), and the plugin of
    each plugin rule."""
    found: dict[str, Rule] = {}
    for module in _modules("zoo.rules"):
        for rule in getattr(module, "RULES", ()):
            if rule.name in found:
                raise ValueError(f"rule {rule.name!r} is declared twice")
            found[rule.name] = rule
    return _with_plugins(found, plugin_rules(), "rule")


def rules() -> dict[str, Rule]:
    """Every learning rule, by name: the ``RULES`` of each module under ``zoo/rules/`` and of each plugin."""
    return dict(_rules()[0])


@functools.cache
def _all_families() -> dict[str, Family]:
    found: dict[str, Family] = {}
    known_rules, rule_origins = _rules()
    arch_origins = _architectures()[1]
    for rule in known_rules.values():
        try:
            generated = rule_families(rule, architectures())
        except ValueError as exc:
            if rule.name not in rule_origins:
                raise
            skip(rule_origins[rule.name], str(exc))
            continue
        for family in generated:
            origin = rule_origins.get(rule.name) or arch_origins.get(family.architecture or "")
            if family.name in found:
                if origin is None:
                    raise ValueError(f"model family {family.name!r} is generated twice")
                skip(origin, f"family {family.name!r} already exists")
                continue
            found[family.name] = dataclasses.replace(family, plugin=str(origin)) if origin else family
    return dict(sorted(found.items()))


def rediscover() -> None:
    """Forget the architectures, rules, plugins and families found so far: the next lookup searches the modules and
    entry points again (after a plugin was installed, or a module added, in a running process)."""
    for cached in (_architectures, _rules, _all_families, plugin_rules, plugin_architectures):
        cached.cache_clear()


def families() -> dict[str, Family]:
    """Every model family, by entrypoint name."""
    return dict(_all_families())


def get_family(name: str) -> Family:
    """The family of an entrypoint name; an unknown name raises with the closest known names."""
    known = _all_families()
    if name not in known:
        raise UnknownModelError(f"unknown model family {name!r}. "
                                f"{suggest(name, known, 'families', 'torch.hub.list or zoo.registry.families()')}")
    return known[name]


def family_of(model: nn.Module) -> Family:
    """The family of a zoo model, from its ``model.zoo_cfg``."""
    cfg = getattr(model, CFG_ATTRIBUTE, None)
    if not isinstance(cfg, ModelCfg):
        raise TypeError(f"{type(model).__name__} is not a zoo model (it has no {CFG_ATTRIBUTE}); build it with "
                        "zoo.create_model(...), zoo.load(...) or Family.build_model(...)")
    return get_family(cfg.family)


def suggest(name: str, choices: Mapping[str, Any] | list[str], noun: str = "names", listing: str = "") -> str:
    """'Did you mean ...?' text: the close matches of ``name`` among ``choices`` (case ignored) and how many
    ``noun`` there are, never the whole list (``listing`` says where to see it)."""
    options = sorted(choices)
    by_lower = {option.lower(): option for option in options}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)]
    where = f"; {listing} lists them" if listing else ""
    if close:
        return f"Did you mean: {', '.join(close)}? ({len(options)} {noun} known{where})"
    return f"None of the {len(options)} known {noun} is close{where}."
