"""Export a zoo model's inference forward pass to ONNX, for deployment runtimes (onnxruntime and the tools that read
ONNX). Needs the ``onnx`` extra.

The graph takes ``images``, float32 ``[N, C, H, W]`` in ``[0, 1]`` with a free batch size, and returns ``logits``
``[N, num_classes]``; normalisation is inside, as in the zoo's model. It is traced in eval mode, where every learning
rule's layers are plain layers, so every family exports, the spiking nets with their time steps unrolled. The
file is written to a temporary name, checked with ``onnx.checker`` and then renamed.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from zoo.evaluation.extras import optional_import, require
from zoo.files import atomic_write
from zoo.registry import CFG_ATTRIBUTE

ONNX_PURPOSE = "ONNX export"
ONNX_PACKAGES = ("onnx",)
OPSET = 17
INPUT, OUTPUT = "images", "logits"


def require_onnx() -> None:
    """:class:`~zoo.errors.MissingExtraError` unless ``onnx`` is installed: what to check before fetching a
    checkpoint to export."""
    require(ONNX_PURPOSE, *ONNX_PACKAGES)


def export_onnx(model: nn.Module, path: Path) -> Path:
    """Write ``model``'s eval-mode forward pass (a zoo model) to ``path`` and return it."""
    require_onnx()
    onnx = optional_import("onnx", ONNX_PURPOSE, "onnx", extra="onnx")
    cfg = getattr(model, CFG_ATTRIBUTE, None)
    if cfg is None:
        raise TypeError(f"{type(model).__name__} is not a zoo model; export one from zoo.load(ID) or zoo.create_model")
    model = model.eval()
    example = torch.rand(2, *cfg.arch["in_shape"])
    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes about the eager-only input check
            torch.onnx.export(model, (example,), tmp, dynamo=False, opset_version=OPSET, input_names=[INPUT],
                              output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        onnx.checker.check_model(tmp)

    atomic_write(Path(path).absolute(), write)
    return Path(path)
