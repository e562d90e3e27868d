"""Data-parallel scaling of the training script, and the cost of saving the resumable state, in one run.

    python benchmarks/ddp_scaling.py                        # bp_mlp and fa_mlp on 12,000 MNIST images
    python benchmarks/ddp_scaling.py --families bp_mlp --limit 6000 --data-root ../shared/datasets
    python benchmarks/ddp_scaling.py --batch-size 1000                 # larger global batches

For each family the real command line trains one epoch twice: in one process and under ``torchrun`` with two
processes (gloo), each process with one thread, on the same global batches. Throughput is images per second of
the epoch's training time as the run itself recorded it (``recipe.curve[0].wall_s``: start-up, evaluation and
saving excluded), and the table prints the 2-process / 1-process ratio (2.00 would be perfect scaling on two
cores).

The state cost: the median time of :func:`zoo.engine.train_state.save_train_state` for the family's model and trainer
after one epoch, as a fraction of the time of one full epoch (60,000 MNIST images at the 1-process throughput
measured above). Target: at most 2 %.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.engine.train_state import save_train_state  # noqa: E402
from zoo.registry import get_family  # noqa: E402

FULL_EPOCH = 60_000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["bp_mlp", "fa_mlp"])
    parser.add_argument("--limit", type=int, default=12_000, help="training images of the timed epoch")
    parser.add_argument("--batch-size", type=int, help="global batch size (default: the recipe's, 100)")
    parser.add_argument("--data-root", type=Path, default=os.environ.get("ZOO_DATA_ROOT"))
    parser.add_argument("--repeats", type=int, default=5, help="timed saves of the state (median)")
    return parser.parse_args(argv)


def epoch_throughput(family: str, processes: int, limit: int, data_root: Path | None, out: Path,
                     batch_size: int | None) -> float:
    """Images per second of one training epoch run by the real CLI with ``processes`` processes of one thread."""
    runner = [sys.executable] if processes == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                      f"--nproc_per_node={processes}"]
    command = [*runner, "-m", "training.train", family, "--dataset", "mnist", "--epochs", "1", "--limit", str(limit),
               "--test-limit", "100", "--device", "cpu", "--no-progress", "--out", str(out)]
    if data_root is not None:
        command += ["--data-root", str(data_root)]
    if batch_size is not None:
        command += ["--set", f"fit.batch_size={batch_size}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    wall = json.loads((out / "entry.json").read_text())["recipe"]["curve"][0]["wall_s"]
    return limit / wall


def state_save_seconds(family_name: str, repeats: int, folder: Path) -> float:
    """Median wall time of saving the model, trainer and RNG state of ``family_name`` after one step."""
    torch.set_num_threads(1)
    family = get_family(family_name)
    model = family.build_model(family.arch_for("mnist"))
    trainer = family.trainer(model, {}, FULL_EPOCH // 100, 1)
    trainer.step(torch.rand(100, 1, 28, 28), torch.randint(0, 10, (100,)))
    generator = torch.Generator().manual_seed(0)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        save_train_state(folder, model=model, trainer_state=trainer.state_dict(), generator=generator,
                         epochs_done=i + 1, extra={"history": []})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"{'family':10s} {'1 proc img/s':>13s} {'2 proc img/s':>13s} {'ratio':>6s} {'save s':>7s} "
          f"{'epoch s':>8s} {'save/epoch':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            one = epoch_throughput(name, 1, args.limit, args.data_root, Path(tmp) / f"{name}-1", args.batch_size)
            two = epoch_throughput(name, 2, args.limit, args.data_root, Path(tmp) / f"{name}-2", args.batch_size)
            save = state_save_seconds(name, args.repeats, Path(tmp) / f"{name}-state")
            epoch = FULL_EPOCH / one
            print(f"{name:10s} {one:13.0f} {two:13.0f} {two / one:6.2f} {save:7.3f} {epoch:8.1f} "
                  f"{100 * save / epoch:9.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
