"""`python -m zoo export-onnx`: every family's published checkpoint runs in onnxruntime with PyTorch's logits on
real test images (issue 30)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from datasets import root_with

import zoo
from zoo.api import manifest
from zoo.data import load_split
from zoo.registry import families
from zoo.weights.onnx_export import export_onnx

ort = pytest.importorskip("onnxruntime")
TOLERANCE = 1e-4  # of the largest |logit|, at least 1e-4 absolute (SoftHebb's logits reach thousands)


def model_of(name: str) -> tuple[torch.nn.Module, str]:
    """The family's published checkpoint on its first dataset that has one (an untrained model while none is)."""
    for dataset in families()[name].datasets:
        entry = manifest().entries.get(f"{name}.{dataset}")
        if entry is not None and entry.published:
            return zoo.load(entry.id), dataset
    dataset = families()[name].datasets[0]
    torch.manual_seed(0)
    return zoo.create_model(name, weights=None, dataset=dataset).eval(), dataset


@pytest.mark.parametrize("name", sorted(families()))
def test_every_family_exports_and_onnxruntime_gives_its_logits(name, tmp_path) -> None:
    model, dataset = model_of(name)
    images, _ = load_split(dataset, "test", root_with(dataset) if dataset != "mnist" else None, limit=64)
    x = images.float() / 255
    path = export_onnx(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"images": x.numpy()})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    assert got.shape == expected.shape == (64, 10)
    assert np.abs(got - expected).max() <= TOLERANCE * max(1.0, float(np.abs(expected).max()))
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_the_command_refuses_to_overwrite_without_force(tmp_path) -> None:
    target = tmp_path / "m.onnx"
    target.write_text("keep me")
    refused = subprocess.run([sys.executable, "-m", "zoo", "export-onnx", "bp_mlp.mnist", str(target)],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "--force" in refused.stderr and target.read_text() == "keep me"
    done = subprocess.run([sys.executable, "-m", "zoo", "export-onnx", "bp_mlp.mnist", str(target), "--force"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes()[:2] != b"ke" and not list(tmp_path.glob("*.tmp"))
