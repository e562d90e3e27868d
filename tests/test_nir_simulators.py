"""The published spiking nets exported to NIR run in a simulator other than snnTorch (issue 30): Norse's own importer
reads the file with the time step its metadata states and runs the 10,000 MNIST test images for the metadata's
steps, with its encoding and readout, giving the zoo model's predictions.

Norse is pinned in requirements-nodeps.txt, which ``make test`` installs with ``pip --no-deps`` (Norse declares
torchvision, which its NIR importer does not use and whose wheel for this torch does not import). Without Norse the
test is skipped, except under ``CI=true``, where it fails, as a missing dataset does (tests/datasets.py).
"""
from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType

import pytest
import torch

pytest.importorskip("snntorch")  # the exporter (the snn extra)
nir = pytest.importorskip("nir")

import zoo  # noqa: E402
from zoo.api import get_entry  # noqa: E402
from zoo.data import load_split  # noqa: E402
from zoo.rules.spiking import export_nir  # noqa: E402

BATCH = 1000


def norse() -> ModuleType:
    """``norse.torch``; skip without it, or fail under ``CI=true``."""
    try:
        with warnings.catch_warnings():  # Norse 1.1 scripts functions with torch.jit, which this torch deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module("norse.torch")
    except ImportError:
        message = "norse missing: pip install --no-deps -r requirements-nodeps.txt (make test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@torch.no_grad()
def run_in_norse(path: Path, images: torch.Tensor) -> torch.Tensor:
    """Logits of the NIR graph in ``path`` for float images ``[N, C, H, W]`` in ``[0, 1]``, run as its metadata says:
    imported by ``norse.torch.from_nir`` with the metadata's ``dt``, the image presented at each of ``time_steps``
    steps (the neurons' state carried between them), the output averaged over the steps."""
    graph = nir.read(path)
    steps, dt = int(graph.metadata["time_steps"]), float(graph.metadata["dt"])
    with warnings.catch_warnings():  # Norse 1.1 calls nirtorch's older loader, which warns of its own successor
        warnings.simplefilter("ignore", DeprecationWarning)
        network = norse().from_nir(graph, dt=dt)
    for module in network.modules():  # a NIR Flatten counts the dimensions of one sample; these are batches
        if isinstance(module, torch.nn.Flatten):
            module.start_dim += 1
    logits = []
    for batch in images.split(BATCH):
        state, total = None, torch.zeros(())
        for _ in range(steps):
            out, state = network(batch, state)
            total = total + out
        logits.append(total / steps)
    return torch.cat(logits)


@pytest.mark.parametrize("model_id", ["snn_mlp.mnist", "snn_lenet.mnist"])
def test_norse_runs_the_exported_file_with_the_zoo_models_predictions(model_id: str, tmp_path: Path) -> None:
    """Top-1 within 0.1 pp of the zoo model's (itself the manifest's) on the whole MNIST test split, and at most
    one prediction in 1000 different."""
    norse()
    model = zoo.load(model_id)
    images, labels = load_split("mnist", "test")
    x = images.float() / 255
    with torch.no_grad():
        expected = torch.cat([model(batch) for batch in x.split(BATCH)]).argmax(1)
    got = run_in_norse(export_nir(model, tmp_path / "model.nir"), x).argmax(1)
    zoo_top1, norse_top1 = (100 * (p == labels).double().mean().item() for p in (expected, got))
    assert len(labels) == 10_000
    assert zoo_top1 == pytest.approx(get_entry(model_id).metrics["top1"], abs=0.005)
    assert abs(norse_top1 - zoo_top1) <= 0.1, (zoo_top1, norse_top1)
    assert (got == expected).double().mean().item() >= 0.999
