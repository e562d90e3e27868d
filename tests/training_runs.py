"""Helpers of the tests that run the training script: child processes, run folders, checkpoints."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
