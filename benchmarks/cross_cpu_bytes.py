"""Can the same command give the same checkpoint bytes on different x86 CPU kinds, and at what cost?

    python benchmarks/cross_cpu_bytes.py [--record results/cross_cpu_bytes.json] [--limit 2000]

Trains short runs (one epoch of real MNIST images, one thread) of a fully connected net (MKL matrix products) and a
LeNet (convolutions) in fresh interpreters under each arithmetic setting below, and records, for this CPU's model
and instruction set, each checkpoint's SHA-256, its test top-1 and the wall time of the run:

* ``default``: what torch chooses on this CPU (ATen's widest vector kernels, MKL's and oneDNN's fastest paths):
  the engine's ``native`` arithmetic (``ZOO_ARITHMETIC=native``);
* ``portable``: every library capped at AVX2 with MKL's strict conditional numerical reproducibility
  (``ATEN_CPU_CAPABILITY=avx2``, ``MKL_CBWR=AVX2,STRICT``, ``ONEDNN_MAX_CPU_ISA=AVX2``), the setting that can give
  identical bytes on every AVX2-capable x86 CPU if any can: the engine's default (:mod:`training.arithmetic`);
* ``scalar``: ATen's kernels without vector instructions (``ATEN_CPU_CAPABILITY=default``), an instruction set no
  shipped CPU kind runs by default: how far top-1 moves when only the arithmetic's rounding changes.

The record keeps one block per CPU kind (merged into ``--record``) with the commit it ran; run on a second kind, the
script prints, per setting and run, whether the bytes equal those recorded on every other kind (and says when that
kind ran other code, where different bytes prove nothing). It prints each setting's time as a
ratio to ``default`` measured in the same invocation.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.arithmetic import environment  # noqa: E402
from training.provenance import cpu_model, git_commit  # noqa: E402

SETTINGS: dict[str, tuple[str, dict[str, str]]] = {  # the engine's arithmetic, and variables set beside it
    "default": ("native", {}),
    "portable": ("portable", {}),
    "scalar": ("native", {"ATEN_CPU_CAPABILITY": "default"}),
}
RUNS: dict[str, list[str]] = {"bp_mlp": [], "bp_lenet": []}
ISA = "import torch; print(torch.backends.cpu.get_cpu_capability())"


def one_run(family: str, extra: list[str], setting: tuple[str, dict[str, str]], limit: int, data_root: str,
            out: Path) -> dict[str, Any]:
    """Train ``family`` for one epoch under ``setting`` in a fresh interpreter; its sha256, top-1 and wall time."""
    arithmetic, extra_variables = setting
    env = {**environment(arithmetic, os.environ), "OMP_NUM_THREADS": "1", "ZOO_DATA_ROOT": data_root,
           **extra_variables}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "training.train", family, "--dataset", "mnist", "--epochs", "1",
                    "--limit", str(limit), "--test-limit", "2000", "--no-progress", "--threads", "1",
                    "--out", str(out), *extra], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    entry = json.loads((out / "entry.json").read_text())
    checkpoint = next(out.glob("*.safetensors"))
    isa = subprocess.run([sys.executable, "-c", ISA], env=env, capture_output=True, text=True, check=True)
    return {"sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(), "top1": entry["metrics"]["top1"],
            "wall_s": round(wall, 2), "aten_isa": isa.stdout.strip()}


def against_other_kinds(record: dict[str, Any], kind: str, setting: str, family: str) -> str:
    """Whether ``kind``'s bytes for one run equal those of every other CPU kind recorded with the same run size."""
    mine = record[kind]
    said = []
    for other, block in record.items():
        if other == kind or block.get("limit") != mine["limit"] or setting not in block["runs"]:
            continue
        same = block["runs"][setting][family]["sha256"] == mine["runs"][setting][family]["sha256"]
        code = "" if block.get("git_commit") == mine["git_commit"] else f" (other code: {block.get('git_commit')})"
        said.append(f"{'same' if same else 'DIFFERENT'} bytes as {other}{code}")
    return "; ".join(said) or "no other CPU kind recorded"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", type=Path, default=REPO / "results" / "cross_cpu_bytes.json")
    parser.add_argument("--limit", type=int, default=2000, help="training images per run")
    parser.add_argument("--data-root", default=os.environ.get("ZOO_DATA_ROOT", str(REPO.parent / "shared" /
                                                                                    "datasets")))
    args = parser.parse_args()
    native = subprocess.run([sys.executable, "-c", ISA], capture_output=True, text=True, check=True).stdout.strip()
    kind = f"{cpu_model()} ({native})"
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, setting in SETTINGS.items():
            results[name] = {family: one_run(family, extra, setting, args.limit, args.data_root,
                                             Path(tmp) / f"{name}-{family}") for family, extra in RUNS.items()}
    record = json.loads(args.record.read_text()) if args.record.exists() else {}
    commit = git_commit()
    record[kind] = {"torch": __import__("torch").__version__, "limit": args.limit, "git_commit": commit,
                    "runs": results}
    tmp_path = args.record.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_path, args.record)

    print(f"this CPU: {kind}")
    for name, runs in results.items():
        for family, run in runs.items():
            ratio = float(run["wall_s"]) / float(results["default"][family]["wall_s"])
            print(f"{name:9s} {family:9s} top-1 {run['top1']:.2f}  sha256 {str(run['sha256'])[:12]}  "
                  f"time {ratio:.2f}x default  {against_other_kinds(record, kind, name, family)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
