"""Where and how a checkpoint was made: hardware, torch version, git commit."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

import torch

from training.arithmetic import in_effect

REPO_ROOT = Path(__file__).resolve().parent.parent
# Paths a training run itself writes or that do not affect training; changes there do not make a tree dirty.
# Where an untracked file is code the run may import or read (a module, a recipe).
UNTRACKED_CODE = ("zoo", "training", "hubconf.py")
NOT_CODE = ("weights/", "weights_manifest.json", "README.md", "docs/", "results/", "runs/", "training/in_progress/")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_record() -> dict[str, str]:
    """What decides a CPU run's arithmetic: the CPU model, the instruction set torch's kernels use (``AVX2``,
    ``AVX512``, ...) and the engine's arithmetic setting (:func:`training.arithmetic.in_effect`: ``portable``
    gives the same bytes on the x86 CPU kinds measured, ``native`` only on the same kind)."""
    return {"model": cpu_model(), "isa": torch.backends.cpu.get_cpu_capability(), "arithmetic": in_effect()}


def hardware(device: torch.device | None = None) -> str:
    """The GPU's name when ``device`` is a CUDA device, else the CPU model, core count and torch thread count."""
    if device is not None and device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def git_commit() -> str:
    """``HEAD``'s commit; when tracked code differs from it (weights, manifest and docs excepted) or untracked files
    sit among the code (:data:`UNTRACKED_CODE`), suffixed ``-dirty+<sha256[:12] of the diff and those files>`` so the
    record says which uncommitted change was trained."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
                   if not line[3:].startswith(NOT_CODE)]
        untracked = [name for name in git("ls-files", "--others", "--exclude-standard", "--", *UNTRACKED_CODE)
                     .splitlines() if not name.startswith(NOT_CODE)]
        if not changed and not untracked:
            return head
        digest = hashlib.sha256(git("diff", "HEAD", "--", *changed).encode() if changed else b"")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    for name in sorted(untracked):
        digest.update(name.encode() + b"\0" + (REPO_ROOT / name).read_bytes())
    return f"{head}-dirty+{digest.hexdigest()[:12]}"
