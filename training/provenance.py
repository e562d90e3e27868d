"""Where and how a checkpoint was made: hardware, torch version, git commit."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
# Paths a training run itself writes or that do not affect training; changes there do not make a tree dirty.
NOT_CODE = ("weights/", "weights_manifest.json", "README.md", "docs/", "runs/", "training/in_progress/")


def hardware(device: torch.device | None = None) -> str:
    """The GPU's name when ``device`` is a CUDA device, else the CPU model, core count and torch thread count."""
    if device is not None and device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def git_commit() -> str:
    """``HEAD``'s commit; when tracked code differs from it (weights, manifest and docs excepted), suffixed
    ``-dirty+<sha256[:12] of the diff>`` so the record says which uncommitted change was trained."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
                   if not line[3:].startswith(NOT_CODE)]
        if not changed:
            return head
        diff = git("diff", "HEAD", "--", *changed)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty+{hashlib.sha256(diff.encode()).hexdigest()[:12]}"
