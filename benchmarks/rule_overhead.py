"""Training throughput of each learning rule relative to backprop on the same architecture, in the same run.

    python benchmarks/rule_overhead.py                      # 20 timed batches of 100, median of 3 repeats
    python benchmarks/rule_overhead.py --batches 50 --repeats 5 --arch lenet --threads 2
    python benchmarks/rule_overhead.py --arch own      # the rules' own networks (Hebbian, EP) against bp_mlp
    python benchmarks/rule_overhead.py --arch resnet20 --batch-size 128 --threads 1   # the ResNet-20 rules

Every family of an architecture trains on the same batches (random images: throughput does not depend on the pixels)
with its own trainer and default recipe settings; the families take turns within each repeat, so a change of machine
load during the run hits them alike. After ``--warmup`` untimed steps, one repeat times ``--batches`` consecutive
``trainer.step`` calls. Models and batches are in the memory layout training uses (``--memory-format``, default
``auto``: channels-last for nets with convolutions, as :func:`zoo.engine.fit.fit`). The table gives the median
images/s, the time per step relative to backprop (``time x``: 1.00 = as fast as backprop, 1.30 = 30% slower; ``cpu
x``: the same ratio in process CPU time, which a busy machine disturbs less than wall time) and the implied seconds
per epoch of the dataset's training images.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.data.catalog import DATASETS  # noqa: E402
from zoo.engine.fit import MEMORY_FORMATS, training_layout  # noqa: E402
from zoo.registry import architectures, families, get_family  # noqa: E402

OWN = "own"  # the families whose network is the rule's own (Hebbian layers, equilibrium nets): against bp_mlp


def families_by_architecture() -> dict[str, list[str]]:
    """For each architecture, its families from the registry, backprop's first (the reference); under ``own`` the
    rules' own networks, after ``bp_mlp``."""
    out: dict[str, list[str]] = {}
    for arch in architectures():
        names = sorted(n for n, f in families().items() if f.architecture == arch and n != f"bp_{arch}")
        out[arch] = [f"bp_{arch}", *names]
    out[OWN] = ["bp_mlp", *sorted(n for n, f in families().items() if f.architecture is None)]
    return out


ARCHS = families_by_architecture()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=[*ARCHS, "all"], default="all")
    parser.add_argument("--dataset", default="mnist",
                        help="sets the input shape and class count (default mnist; an architecture made for other "
                             "datasets uses its first one)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batches", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per family before the first repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-format", choices=MEMORY_FORMATS, default="auto",
                        help="layout of models and batches (default auto: the one training uses)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch_size}, "
          f"{args.batches} timed steps x {args.repeats} repeats (median), {args.warmup} warm-up steps")
    for arch, names in ARCHS.items():
        if args.arch not in ("all", arch):
            continue
        families = [get_family(n) for n in names]
        made_for = architectures()[arch].datasets if arch != OWN else tuple(DATASETS)
        dataset = args.dataset if args.dataset in made_for else made_for[0]
        first = families[0].arch_for(dataset)
        shape = (args.batch_size, *first["in_shape"])
        reference = families[0].build_model(first)
        layout = training_layout(reference, args.memory_format)
        batches = [(torch.rand(shape).contiguous(memory_format=layout),
                    torch.randint(0, first["num_classes"], (args.batch_size,))) for _ in range(args.batches)]
        trainers = {}
        for family in families:
            model = family.build_model(family.arch_for(dataset)).train().to(memory_format=layout)
            constant = {"schedule": "constant"} if "schedule" in family.trainer.options else {}
            trainers[family.name] = family.trainer(model, constant, 10_000, 1)
            for x, y in batches[:args.warmup]:
                trainers[family.name].step(x, y)
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.repeats):
            for name in names:
                trainer = trainers[name]
                start, start_cpu = time.perf_counter(), time.process_time()
                for x, y in batches:
                    trainer.step(x, y)
                wall[name].append((time.perf_counter() - start) / len(batches))
                cpu[name].append((time.process_time() - start_cpu) / len(batches))
        base, base_cpu = statistics.median(wall[names[0]]), statistics.median(cpu[names[0]])
        epoch_images = DATASETS[dataset].n_train
        print(f"\n{arch} ({dataset}, arch defaults, {str(layout).split('.')[-1]}; s/epoch for its {epoch_images:,} "
              "training images)")
        print(f"{'family':<12} {'ms/step':>8} {'images/s':>9} {'time x':>7} {'cpu x':>6} {'s/epoch':>8}  "
              f"repeats (wall ms/step)")
        for name in names:
            step, step_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
            runs = " ".join(f"{1000 * t:.0f}" for t in wall[name])
            print(f"{name:<12} {1000 * step:>8.1f} {args.batch_size / step:>9.0f} {step / base:>7.2f} "
                  f"{step_cpu / base_cpu:>6.2f} {epoch_images / args.batch_size * step:>8.1f}  {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
