"""Rules and architectures from installed packages, found through entry points beside the built-in ones.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."bioplausible_zoo.rules"]
    my_rule = "my_package.my_rule"          # a module with a tuple RULES of zoo.rules.base.Rule

    [project.entry-points."bioplausible_zoo.archs"]
    my_net = "my_package.my_net"            # a module with ARCHITECTURE, a zoo.archs.base.Architecture

The registry (:mod:`zoo.registry`) then generates the plugin rule's families with every architecture it trains
(built-in or plugin) and the built-in rules' families with a plugin architecture, exactly as for modules under
``zoo/rules/`` and ``zoo/archs/``. A plugin that fails to import, declares something else, or reuses a name the zoo
(or an earlier plugin) has, is skipped with one line on stderr naming the plugin; ``import zoo`` and every other
family keep working. :func:`problems` lists what was skipped.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from zoo.archs.base import Architecture
from zoo.rules.base import Rule

RULES_GROUP = "bioplausible_zoo.rules"
ARCHS_GROUP = "bioplausible_zoo.archs"


@dataclass(frozen=True)
class Plugin:
    """Where a plugin rule or architecture comes from: the entry point's name and value and its distribution."""

    name: str
    value: str
    distribution: str

    def __str__(self) -> str:
        return f"plugin {self.name} ({self.value}, from {self.distribution})"


def _plugin(point: EntryPoint) -> Plugin:
    dist = point.dist.name if point.dist is not None else "an unknown distribution"
    return Plugin(point.name, point.value, dist)


_PROBLEMS: list[str] = []


def problems() -> list[str]:
    """The lines printed for plugins that were skipped, in the order they were found."""
    return list(_PROBLEMS)


def skip(plugin: Plugin, reason: str) -> None:
    """Say once, on one line of stderr, that ``plugin`` is skipped and why."""
    line = f"bioplausible-zoo: {plugin} skipped: {reason}"
    if line not in _PROBLEMS:
        _PROBLEMS.append(line)
        print(line, file=sys.stderr)


def _declared(point: EntryPoint, attribute: str) -> Any:
    """What the entry point declares: its module's ``attribute``, or the object it names."""
    loaded = point.load()
    return getattr(loaded, attribute, None) if isinstance(loaded, ModuleType) else loaded


def _load(group: str, attribute: str) -> list[tuple[Plugin, Any]]:
    found = []
    for point in sorted(entry_points(group=group), key=lambda p: (p.name, p.value)):
        plugin = _plugin(point)
        try:
            found.append((plugin, _declared(point, attribute)))
        except Exception as exc:  # a broken plugin must never break import zoo
            skip(plugin, f"importing it failed: {type(exc).__name__}: {exc}")
    return found


@functools.cache
def plugin_rules() -> tuple[tuple[Plugin, Rule], ...]:
    """Every rule the ``bioplausible_zoo.rules`` entry points declare (``RULES`` of a module, a rule, or a tuple of
    rules), with its plugin; what is not a :class:`~zoo.rules.base.Rule` is skipped."""
    out: list[tuple[Plugin, Rule]] = []
    for plugin, declared in _load(RULES_GROUP, "RULES"):
        items = declared if isinstance(declared, (tuple, list)) else (declared,)
        if not items or not all(isinstance(item, Rule) for item in items):
            skip(plugin, f"it declares {type(declared).__name__}, not a RULES tuple of zoo.rules.base.Rule")
            continue
        out.extend((plugin, rule) for rule in items)
    return tuple(out)


@functools.cache
def plugin_architectures() -> tuple[tuple[Plugin, Architecture], ...]:
    """Every architecture the ``bioplausible_zoo.archs`` entry points declare (a module's ``ARCHITECTURE``, or an
    :class:`~zoo.archs.base.Architecture`), with its plugin."""
    out: list[tuple[Plugin, Architecture]] = []
    for plugin, declared in _load(ARCHS_GROUP, "ARCHITECTURE"):
        if not isinstance(declared, Architecture):
            skip(plugin, f"it declares {type(declared).__name__}, not a zoo.archs.base.Architecture (ARCHITECTURE)")
            continue
        out.append((plugin, declared))
    return tuple(out)
