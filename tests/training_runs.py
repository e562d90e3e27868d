"""Helpers of the tests that run the training script: child processes, run folders, checkpoints."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_BP_MLP = {"entrypoint": "bp_mlp", "selected_on": "test", "notes": "a recipe of a few seconds, for this test",
               "datasets": {"mnist": {"arch": {"hidden": [16]}, "fit": {"epochs": 2, "rule": {"lr": 0.003}}}}}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_entry(out: Path) -> dict:
    return json.loads((out / "entry.json").read_text())


def checkpoint_of(out: Path) -> Path:
    return out / Path(run_entry(out)["file"]).name


def train_cli(*args: str, env_extra: dict[str, str] | None = None, runner: tuple[str, ...] = ()) -> \
        subprocess.Popen[str]:
    """``python -m training.train ARGS`` in a child process with one thread and no TTY."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    command = [*(runner or (sys.executable,)), "-m", "training.train", *args]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_after_first_epoch(process: subprocess.Popen[str], out: Path, timeout: float = 120.0) -> None:
    """SIGKILL ``process`` as soon as it has saved the state of epoch 1."""
    deadline = time.monotonic() + timeout
    state = out / "state.json"
    while time.monotonic() < deadline:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 1:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before it could be killed:\n{process.stdout.read() if process.stdout else ''}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("no state saved after the first epoch")


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                          capture_output=True, text=True).stdout


def clone_of_this_tree(target: Path) -> Path:
    """A git clone whose HEAD is this checkout's working tree as it is now (code, recipes, manifest; the weights and
    in-progress states as committed), so the test exercises the code under test."""
    git(REPO, "clone", "-q", "--local", str(REPO), str(target))
    files = git(REPO, "ls-files", "-co", "--exclude-standard").splitlines()
    for name in files:
        if name.startswith(("weights/", "training/in_progress/")) or not (REPO / name).is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, target / name)
    git(target, "add", "-A")
    git(target, "commit", "-qm", "this working tree", "--allow-empty")
    return target
