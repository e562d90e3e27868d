"""Cold ``zoo.load`` + first forward, against a bare ``import torch``, each in a fresh interpreter.

    python benchmarks/load_time.py [--model bp_mlp.mnist] [--repeats 5]

Prints the median wall time of each and their ratio (load+forward / import torch). Both run offline, from
the checkout's verified file, so the figure is the zoo's own overhead: manifest, hash check, build, load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BARE = "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
ZOO = """import time; t = time.perf_counter()
import torch, zoo
model = zoo.load({model!r})
shape = zoo.get_weights({model!r}).meta["input"]["shape"]
with torch.no_grad():
    model(torch.rand(1, *shape))
print(time.perf_counter() - t)"""


def timed(code: str) -> float:
    """Seconds the snippet reports for itself in a fresh interpreter."""
    env = {**os.environ, "ZOO_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bp_mlp.mnist")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    timed(BARE)  # warm the OS file cache for both
    bare, zoo_load = [], []
    for _ in range(args.repeats):
        bare.append(timed(BARE))
        zoo_load.append(timed(ZOO.format(model=args.model)))
    b, z = statistics.median(bare), statistics.median(zoo_load)
    print(f"import torch (bare)                      median {b * 1000:8.1f} ms over {args.repeats} runs")
    print(f"import torch + zoo.load + first forward  median {z * 1000:8.1f} ms   ({args.model})")
    print(f"ratio (zoo cold load / bare import torch): {z / b:.2f}x   zoo's own overhead: {(z - b) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
