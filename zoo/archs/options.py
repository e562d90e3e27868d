"""What an ``arch`` record may hold, checked before a network is built: the input shape, the class count, and every
architecture or rule option against the kind of its default.

The kinds, from the default's type (the same for every family, so a new option is checked without declaring
anything): ``True``/``False`` for a bool, a positive integer for an int (options that are ints are sizes and counts:
widths, steps, kernels), a finite number for a float, a string for a str, and for a list a list whose items are of
the kind of the default's first item (``hidden=[800, 800]``: a list of positive integers). :data:`RANGES` narrows
the options whose values have a range of their own. Which strings are accepted (an activation, a pooling) is left to
the network that reads them, which names its choices.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

#: Options with a range beyond their kind: ``name -> (low, high)``, ``low <= value < high``.
RANGES: dict[str, tuple[float, float]] = {"dropout": (0.0, 1.0)}
MIN_CLASSES = 2


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind(default: Any) -> tuple[Callable[[Any], bool], str]:
    """The test a value of ``default``'s kind passes, and the kind's name for error messages."""
    if isinstance(default, bool):
        return (lambda v: isinstance(v, bool)), "True or False"
    if isinstance(default, int):
        return (lambda v: _is_int(v) and v >= 1), "a positive integer"
    if isinstance(default, float):
        return _is_number, "a finite number"
    if isinstance(default, str):
        return (lambda v: isinstance(v, str)), "a string"
    if isinstance(default, (list, tuple)) and default:
        item, name = _kind(default[0])
        plural = name.replace("a ", "", 1) + "s" if name.startswith("a ") else name
        return (lambda v: isinstance(v, (list, tuple)) and all(item(x) for x in v)), f"a list of {plural}"
    if isinstance(default, (list, tuple)):
        return (lambda v: isinstance(v, (list, tuple))), "a list"
    return (lambda v: True), "any value"


def accepted(key: str, default: Any) -> str:
    """What option ``key`` (default ``default``) accepts, in words: ``"a positive integer"``, ``"a number in
    [0, 1)"``..."""
    if key in RANGES:
        low, high = RANGES[key]
        return f"a number in [{low:g}, {high:g})"
    return _kind(default)[1]


def check_option(owner: str, key: str, value: Any, default: Any) -> None:
    """:class:`ValueError` naming ``key=value`` and what it accepts, unless ``value`` is of ``default``'s kind (and in
    :data:`RANGES` where the key has a range)."""
    ok = _kind(default)[0](value)
    if ok and key in RANGES:
        low, high = RANGES[key]
        ok = _is_number(value) and low <= value < high
    if not ok:
        raise ValueError(f"{owner}: architecture option {key}={value!r} is not valid; accepted: "
                         f"{accepted(key, default)} (default {default!r})")


def check_in_shape(owner: str, in_shape: Any) -> None:
    """:class:`ValueError` unless ``in_shape`` is ``(C, H, W)``, three positive integers."""
    if not isinstance(in_shape, (list, tuple)) or len(in_shape) != 3 or not all(_is_int(d) and d >= 1
                                                                                 for d in in_shape):
        raise ValueError(f"{owner}: in_shape={in_shape!r} is not valid; accepted: (C, H, W), three positive integers")


def check_num_classes(owner: str, num_classes: Any) -> None:
    """:class:`ValueError` unless ``num_classes`` is an integer of at least :data:`MIN_CLASSES`."""
    if not _is_int(num_classes) or num_classes < MIN_CLASSES:
        raise ValueError(f"{owner}: num_classes={num_classes!r} is not valid; accepted: an integer >= {MIN_CLASSES}")


def check_arch(owner: str, arch: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Check an ``arch`` record before building it: its ``in_shape``, ``num_classes`` and each option named in
    ``defaults`` (the family's options with their defaults) that ``arch`` holds; the first bad value raises
    :class:`ValueError`."""
    check_in_shape(owner, arch["in_shape"])
    check_num_classes(owner, arch["num_classes"])
    for key, default in defaults.items():
        if key in arch:
            check_option(owner, key, arch[key], default)
