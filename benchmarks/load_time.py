"""What ``zoo.load`` costs: cold in a fresh interpreter against a bare ``import torch``, and warm against the bare
path a user would write by hand (build the module, ``safetensors.torch.load_file``, ``load_state_dict``).

    python benchmarks/load_time.py [--model bp_mlp.mnist] [--repeats 5]

Prints the median wall time of each and their ratios. All run offline, from the checkout's file, so the figures are
the zoo's own overhead: manifest, hash check (skipped for a settled file verified unchanged), build, load.
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


WARM = """import time, statistics, torch, zoo
from safetensors.torch import load_file
from zoo.registry import get_family
from zoo.weights.resolve import checkout_file
entry = zoo.get_weights({model!r}).entry
zoo.load({model!r})  # verifies (and records) the file once, as any earlier use would
bare, zoo_load = [], []
for _ in range({repeats}):
    t = time.perf_counter()
    model = get_family(entry.entrypoint).build_model(entry.arch)
    model.load_state_dict(load_file(str(checkout_file(entry))), strict=False)
    bare.append(time.perf_counter() - t)
    t = time.perf_counter()
    zoo.load({model!r})
    zoo_load.append(time.perf_counter() - t)
print(statistics.median(bare), statistics.median(zoo_load))"""


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
    env = {**os.environ, "ZOO_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", WARM.format(model=args.model, repeats=max(5, args.repeats))],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True)
    bare_path, warm = (float(v) for v in out.stdout.split())
    print(f"build + load_file + load_state_dict      median {bare_path * 1000:8.1f} ms")
    print(f"zoo.load (warm, file verified before)    median {warm * 1000:8.1f} ms")
    print(f"ratio (zoo.load / bare path): {warm / bare_path:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
