"""The arithmetic a CPU training run uses: portable by default, so one command gives the same bytes on x86 CPUs of
different kinds.

torch's CPU kernels (ATen), MKL's matrix products and oneDNN's convolutions each pick the widest vector instructions
the CPU has, and AVX-512 kernels round differently from AVX2 ones. ``benchmarks/cross_cpu_bytes.py`` measured it
(``results/cross_cpu_bytes.json``): a one-epoch ``bp_mlp`` and ``bp_lenet`` run gave other bytes on an AMD EPYC with
AVX-512 than on one with AVX2, and the same bytes on both with every library capped at AVX2 and MKL's strict
conditional numerical reproducibility (:data:`PORTABLE`).

So the engine is ``portable`` unless ``ZOO_ARITHMETIC=native`` says otherwise. The libraries read these variables
once, as they start, so :func:`apply` sets them when the package ``training`` is imported, before torch is (every
``python -m training.<script>`` and the processes it starts); where torch was imported first (a training run
started from Python code that already used torch) nothing is changed, and the run records what held: see
:func:`in_effect`, which every run records in its ``cpu`` block.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Mapping, MutableMapping

PORTABLE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
CHOICE = "ZOO_ARITHMETIC"
CHOICES = ("portable", "native")


def chosen(env: Mapping[str, str] = os.environ) -> str:
    """The arithmetic ``$ZOO_ARITHMETIC`` asks for (default ``portable``); :class:`ValueError` for anything else."""
    value = env.get(CHOICE, "portable")
    if value not in CHOICES:
        raise ValueError(f"{CHOICE}={value!r} is not an arithmetic the engine knows; accepted: {', '.join(CHOICES)}")
    return value


def apply(env: MutableMapping[str, str] = os.environ) -> None:
    """Set :data:`PORTABLE` into ``env`` when the portable arithmetic is chosen and torch is not imported yet;
    ``native`` leaves the environment as it is."""
    if chosen(env) == "portable" and "torch" not in sys.modules:
        env.update(PORTABLE)


def in_effect(env: Mapping[str, str] = os.environ) -> str:
    """``portable`` when the environment holds :data:`PORTABLE`, ``native`` when it sets none of those variables,
    else ``custom (NAME=value, ...)`` naming the ones set."""
    present = {name: env[name] for name in PORTABLE if name in env}
    if present == PORTABLE:
        return "portable"
    if not present:
        return "native"
    return "custom (" + ", ".join(f"{name}={value}" for name, value in present.items()) + ")"


def recorded(cpu: Any) -> str:
    """The arithmetic a run's ``cpu`` record names; ``native`` for a record written before runs recorded it (the
    engine used each library's fastest path then)."""
    return str(cpu.get("arithmetic", "native")) if isinstance(cpu, dict) else "native"


def environment(setting: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` for a process that must run with ``setting`` (one of :data:`CHOICES`): :data:`PORTABLE`'s variables
    set for ``portable``, removed for ``native``, and ``$ZOO_ARITHMETIC`` saying so."""
    if setting not in CHOICES:
        raise ValueError(f"no environment gives the {setting} arithmetic; accepted: {', '.join(CHOICES)}")
    env = {name: value for name, value in base.items() if name not in PORTABLE}
    env[CHOICE] = setting
    return {**env, **PORTABLE} if setting == "portable" else env
