"""One unsupervised Krotov-Hopfield epoch: the zoo's trainer against the published reference loop.

    python benchmarks/krotov_speed.py [--dataset mnist|fashion_mnist|cifar10] [--fraction 1.0] [--threads 1]
                                      [--hidden 2000] [--data-root DIR]

Both run in their own fresh interpreter (so each peak RSS, ``ru_maxrss``, is its own) on the same training
images of ``--dataset`` (default MNIST; CIFAR-10's 3072-pixel colour images flattened as the Krotov layer reads
them) in the same order, from the same initial weights, with the paper's hyperparameters (p = 3, k = 7,
delta = 0.4, minibatch 100, eps0 = 0.02):

* reference: a NumPy transcription of Krotov's notebook (``Unsupervised learning by competing hidden units``):
  the whole training set as float64 ``image / 255``, ``tot_input = (sign(W)|W|^(p-1)) @ inputs``, a full
  ``np.argsort`` of the hidden units for every sample, the dense ``ds = yl @ inputs.T - xx * W``, ``W += eps *
  ds / max|ds|``, all in float64;
* zoo: :class:`zoo.rules.krotov.KrotovTrainer` fed exactly as ``zoo.engine.fit`` feeds it (uint8 images converted per
  batch); its model uses ``input_norm="raw"`` and ``init_std=1`` here so that both compute the same thing
  (the published families use per-sample L2 normalisation, which costs the same).

Timed: the epoch loop only (data loading and interpreter start-up excluded). ``--fraction`` times that share of
the epoch's minibatches (both sides, stated in the output). ``--threads`` sets torch's and NumPy's BLAS thread
count alike (default 1: on a shared machine more threads mostly add synchronisation stalls). The final weights
of both are compared as a check that they ran the same rule (float32 vs float64 drift only).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
P, K, DELTA, BATCH, EPS0 = 3.0, 7, 0.4, 100, 0.02


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: kilobytes


def reference_worker(work: Path, batches: int) -> dict[str, float]:
    """Krotov's reference loop, transcribed to NumPy (float64, argsort, dense update)."""
    import numpy as np

    images = np.load(work / "images.npy")
    order = np.load(work / "order.npy")
    synapses = np.load(work / "w0.npy").astype(np.float64)
    M = images.reshape(len(images), -1).astype(np.float64) / 255.0            # the notebook's data matrix
    hid, N = synapses.shape
    eps, prec = EPS0, 1e-30                                                    # epoch 0 of the anneal
    Ms = M[order]
    start = time.perf_counter()
    for i in range(batches):
        inputs = np.transpose(Ms[i * BATCH:(i + 1) * BATCH, :])
        sig = np.sign(synapses)
        tot_input = np.dot(sig * np.absolute(synapses) ** (P - 1), inputs)
        y = np.argsort(tot_input, axis=0)
        yl = np.zeros((hid, BATCH))
        yl[y[hid - 1, :], np.arange(BATCH)] = 1.0
        yl[y[hid - K], np.arange(BATCH)] = -DELTA
        xx = np.sum(np.multiply(yl, tot_input), 1)
        ds = np.dot(yl, np.transpose(inputs)) - np.multiply(np.tile(xx.reshape(xx.shape[0], 1), (1, N)), synapses)
        nc = np.amax(np.absolute(ds))
        if nc < prec:
            nc = prec
        synapses += eps * np.true_divide(ds, nc)
    seconds = time.perf_counter() - start
    np.save(work / "w_reference.npy", synapses)
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def zoo_worker(work: Path, batches: int, epochs_for_anneal: int, dataset: str) -> dict[str, float]:
    """The zoo's KrotovTrainer, one Hebbian step per minibatch, fed like zoo.engine.fit feeds it."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from zoo.registry import get_family
    from zoo.rules.krotov import KrotovTrainer

    images = torch.from_numpy(np.load(work / "images.npy"))
    order = torch.from_numpy(np.load(work / "order.npy"))
    family = get_family("krotov_fc")
    w0 = torch.from_numpy(np.load(work / "w0.npy")).float()
    model = family.build_model(family.arch_for(dataset, hidden=w0.shape[0], input_norm="raw", init_std=1.0))
    with torch.no_grad():
        model.hebbian.weight.copy_(w0)
    steps_per_epoch = (len(images) + BATCH - 1) // BATCH
    # anneal over many epochs: during the first one eps stays ~eps0, as in the reference's epoch 0
    trainer = KrotovTrainer(model, {"hebbian_epochs": epochs_for_anneal, "hebbian_lr": EPS0, "p": P, "k": K,
                                    "delta": DELTA}, steps_per_epoch, epochs_for_anneal)
    labels = torch.zeros(len(images), dtype=torch.int64)
    start = time.perf_counter()
    for i in range(batches):
        index = order[i * BATCH:(i + 1) * BATCH]
        x = images[index].to(torch.float32).div_(255.0)
        trainer.step(x, labels[index])
    seconds = time.perf_counter() - start
    np.save(work / "w_zoo.npy", model.hebbian.weight.detach().numpy())
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def run_worker(kind: str, work: Path, batches: int, threads: int, dataset: str) -> dict[str, float]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--work", str(work), "--batches", str(batches),
                          "--threads", str(threads), "--dataset", dataset], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("mnist", "fashion_mnist", "cifar10"), default="mnist")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the epoch's minibatches to time")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads for both (default 1)")
    parser.add_argument("--hidden", type=int, default=2000)
    parser.add_argument("--data-root", type=Path, help="dataset root (default: $ZOO_DATA_ROOT or the user cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=("reference", "zoo"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "reference":
            result = reference_worker(args.work, args.batches)
        else:
            import torch

            torch.set_num_threads(args.threads)
            result = zoo_worker(args.work, args.batches, epochs_for_anneal=1000, dataset=args.dataset)
        print(json.dumps(result))
        return 0

    import numpy as np

    sys.path.insert(0, str(REPO))
    from zoo.data import load_split
    from zoo.errors import ZooError

    try:
        images, _ = load_split(args.dataset, "train", args.data_root)
        split = "train"
    except (ZooError, FileNotFoundError):
        if args.dataset != "mnist":
            raise
        images, _ = load_split("mnist", "test")   # bundled with the package
        split = "test (training split not found)"
    n = len(images)
    total = n // BATCH
    batches = max(1, min(total, round(total * args.fraction)))
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.save(work / "images.npy", images.numpy())
        np.save(work / "order.npy", rng.permutation(n))
        np.save(work / "w0.npy", rng.normal(0.0, 1.0, (args.hidden, images[0].numel())))   # the notebook's init
        print(f"{args.dataset} {split}: {n} images of {images[0].numel()} values, hidden {args.hidden}, "
              f"minibatch {BATCH}, p={P}, k={K}, delta={DELTA}; "
              f"timing {batches}/{total} minibatches ({100 * batches / total:.0f} % of one epoch), "
              f"{args.threads} thread(s) each", flush=True)
        ref = run_worker("reference", work, batches, args.threads, args.dataset)
        ours = run_worker("zoo", work, batches, args.threads, args.dataset)
        w_ref, w_zoo = np.load(work / "w_reference.npy"), np.load(work / "w_zoo.npy")
    scale = batches and total / batches
    print(f"reference (NumPy float64, argsort, dense ds): {ref['seconds']:8.2f} s "
          f"(epoch estimate {ref['seconds'] * scale:7.1f} s)   peak RSS {ref['peak_rss_mb']:7.0f} MB")
    print(f"zoo KrotovTrainer (float32, topk, sparse)   : {ours['seconds']:8.2f} s "
          f"(epoch estimate {ours['seconds'] * scale:7.1f} s)   peak RSS {ours['peak_rss_mb']:7.0f} MB")
    print(f"speed-up: {ref['seconds'] / ours['seconds']:.1f}x   "
          f"(per minibatch: {1000 * ref['seconds'] / batches:.1f} ms vs {1000 * ours['seconds'] / batches:.1f} ms)")
    drift = float(np.abs(w_ref - w_zoo).max() / np.abs(w_ref).max())
    print(f"same rule check: max |W_zoo - W_reference| / max |W_reference| = {drift:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
