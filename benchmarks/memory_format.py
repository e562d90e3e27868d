"""Training step time in channels-last against the default (contiguous) layout, per conv architecture, in one run.

    python benchmarks/memory_format.py                         # bp on every conv architecture, 1 thread
    python benchmarks/memory_format.py --rule fa --arch resnet20 --batch-size 128 --batches 10
    python benchmarks/memory_format.py --eval --batch-size 500     # inference: the model's own channels-last input

``zoo.engine.fit.fit`` trains a model with convolutions in channels-last (``FitConfig.memory_format="auto"``); this
script measures why. For each architecture with convolutions, the same family (``<rule>_<arch>``) and the same
random batches train in both layouts; the layouts take turns within each repeat, so a change of machine load hits
both alike. It prints the median ms per step of each and the ratio ``channels_last / contiguous`` (below 1: faster in
channels-last). Both layouts also run the same steps twice from the same seed to show each is deterministic.
With ``--eval`` it times the eval-mode forward pass instead, with the model's input layer handing the convolutions
contiguous or channels-last images (``ImageInput.channels_last``, on for conv nets), and checks both give the same
predictions.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zoo.engine.trainer import Trainer  # noqa: E402
from zoo.registry import architectures, get_family  # noqa: E402

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def conv_architectures() -> list[str]:
    """The registered architectures whose network has a convolution."""
    out = []
    for name, arch in architectures().items():
        family = get_family(f"bp_{name}")
        model = family.build_model(family.arch_for(arch.datasets[-1]))
        if any(isinstance(m, nn.Conv2d) for m in model.modules()):
            out.append(name)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", action="append", help="architecture (repeatable; default: every conv architecture)")
    parser.add_argument("--rule", default="bp", help="rule whose family is timed (default bp)")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as training runs)")
    parser.add_argument("--eval", action="store_true", help="time the eval-mode forward pass instead of training")
    return parser.parse_args(argv)


def trainer_for(name: str, dataset: str, layout: torch.memory_format) -> Trainer:
    """A fresh model of family ``name`` in ``layout`` with its trainer (constant rate), seeded identically."""
    family = get_family(name)
    torch.manual_seed(0)
    model = family.build_model(family.arch_for(dataset)).train().to(memory_format=layout)
    constant = {"schedule": "constant"} if "schedule" in family.trainer.options else {}
    return family.trainer(model, constant, 10_000, 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); batch {args.batch_size}, "
          f"{args.batches} timed steps x {args.repeats} repeats (median)")
    if args.eval:
        return eval_ratios(args)
    print(f"{'family':<16} {'contiguous ms':>14} {'channels_last ms':>17} {'ratio':>6}  deterministic")
    for arch in args.arch or conv_architectures():
        name = f"{args.rule}_{arch}"
        family = get_family(name)
        dataset = args.dataset if args.dataset in family.datasets else family.datasets[0]
        shape = (args.batch_size, *family.arch_for(dataset)["in_shape"])
        generator = torch.Generator().manual_seed(1)
        batches = [(torch.rand(shape, generator=generator), torch.randint(0, 10, (args.batch_size,),
                                                                          generator=generator))
                   for _ in range(args.batches)]
        trainers = {key: trainer_for(name, dataset, layout) for key, layout in LAYOUTS.items()}
        for key, layout in LAYOUTS.items():
            for x, y in batches[:args.warmup]:
                trainers[key].step(x.contiguous(memory_format=layout), y)
        times: dict[str, list[float]] = {key: [] for key in LAYOUTS}
        for _ in range(args.repeats):
            for key, layout in LAYOUTS.items():
                inputs = [(x.contiguous(memory_format=layout), y) for x, y in batches]
                start = time.perf_counter()
                for x, y in inputs:
                    trainers[key].step(x, y)
                times[key].append((time.perf_counter() - start) / len(inputs))
        same = all(deterministic(name, dataset, layout, batches[:2]) for layout in LAYOUTS.values())
        base, last = statistics.median(times["contiguous"]), statistics.median(times["channels_last"])
        print(f"{name:<16} {1000 * base:>14.1f} {1000 * last:>17.1f} {last / base:>6.2f}  {'yes' if same else 'NO'}")
    return 0


def eval_ratios(args: argparse.Namespace) -> int:
    """The ``--eval`` table: eval forward with contiguous against channels-last images into the convolutions."""
    print(f"{'family':<16} {'contiguous ms':>14} {'channels_last ms':>17} {'ratio':>6}  same predictions")
    for arch in args.arch or conv_architectures():
        name = f"{args.rule}_{arch}"
        family = get_family(name)
        dataset = args.dataset if args.dataset in family.datasets else family.datasets[0]
        model = family.build_model(family.arch_for(dataset)).eval()
        shape = (args.batch_size, *family.arch_for(dataset)["in_shape"])
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        times: dict[bool, list[float]] = {False: [], True: []}
        outputs = {}
        with torch.no_grad():
            for _ in range(args.repeats):
                for layout in (False, True):
                    model.input.channels_last = layout  # type: ignore[union-attr]
                    start = time.perf_counter()
                    outputs[layout] = model(x)
                    times[layout].append(time.perf_counter() - start)
        base, last = statistics.median(times[False]), statistics.median(times[True])
        same = bool((outputs[False].argmax(1) == outputs[True].argmax(1)).all())
        print(f"{name:<16} {1000 * base:>14.1f} {1000 * last:>17.1f} {last / base:>6.2f}  {'yes' if same else 'NO'}")
    return 0


def deterministic(name: str, dataset: str, layout: torch.memory_format,
                  batches: list[tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Whether two fresh models trained on the same batches in ``layout`` end with identical tensors."""
    states = []
    for _ in range(2):
        trainer = trainer_for(name, dataset, layout)
        for x, y in batches:
            trainer.step(x.contiguous(memory_format=layout), y)
        states.append(trainer.model.state_dict())
    return all(torch.equal(a, b) for a, b in zip(states[0].values(), states[1].values()))


if __name__ == "__main__":
    sys.exit(main())
