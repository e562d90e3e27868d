"""The contract a family keeps, as checks anyone can run on a family of their own (``python -m zoo check-rule
FAMILY``), on random images of a dataset's shape, in seconds:

* it builds from its ``arch`` record and returns float logits ``[N, num_classes]``;
* one training step of its rule changes its state, and leaves every tensor finite;
* its state round-trips through a safetensors checkpoint (feedback matrices and buffers included) into a model
  built without a random initialisation (:func:`zoo.weights.checkpoint.build_loaded`);
* a run stopped after its first epoch and resumed from its saved state ends where an uninterrupted run ends;
* two runs with the same seed give the same bytes.

Each check is reported with what failed; the zoo's own families pass all of them (``tests/test_family_contract.py``).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from zoo.engine.fit import FitConfig, fit
from zoo.registry import Family, get_family
from zoo.weights.checkpoint import build_loaded, checkpoint_tensors, save_checkpoint

IMAGES = 48
BATCH = 16


@dataclass(frozen=True)
class CheckResult:
    """One check of the contract: its name, whether it passed, and what was found."""

    name: str
    passed: bool
    detail: str


class _Interrupted(Exception):
    pass


def _data(family: Family, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    shape = family.arch_for(dataset)["in_shape"]
    generator = torch.Generator().manual_seed(7)
    return torch.rand(IMAGES, *shape, generator=generator), torch.arange(IMAGES) % 10


def _build(family: Family, dataset: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return family.build_model(family.arch_for(dataset), dataset=dataset)


def _config(epochs: int) -> FitConfig:
    return FitConfig(epochs=epochs, batch_size=BATCH, seed=0)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return checkpoint_tensors(model)


def _builds(family: Family, dataset: str) -> str:
    model = _build(family, dataset).eval()
    x, _ = _data(family, dataset)
    with torch.no_grad():
        logits = model(x[:4])
    classes = family.arch_for(dataset)["num_classes"]
    assert isinstance(logits, torch.Tensor) and logits.shape == (4, classes) and logits.is_floating_point(), \
        f"expected float logits of shape [4, {classes}], got {getattr(logits, 'shape', type(logits).__name__)}"
    return f"logits {list(logits.shape)}, {sum(p.numel() for p in model.parameters()):,} parameters"


def _trains(family: Family, dataset: str) -> str:
    model = _build(family, dataset).train()
    before = _state(model)
    x, y = _data(family, dataset)
    trainer = family.trainer(model, {}, steps_per_epoch=IMAGES // BATCH, epochs=1)
    trainer.step(x[:BATCH], y[:BATCH])
    after = _state(model)
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed, "one training step changed no tensor of the model"
    broken = sorted(k for k, v in after.items() if v.is_floating_point() and not torch.isfinite(v).all())
    assert not broken, f"non-finite values after one step in {broken}"
    return f"changed {len(changed)} of {len(before)} tensors"


def _round_trip(family: Family, dataset: str) -> str:
    model = _build(family, dataset).eval()
    x, _ = _data(family, dataset)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(model, Path(tmp) / "m.safetensors", entrypoint=family.name,
                               arch=family.arch_for(dataset))
        loaded = build_loaded(lambda: family.build_model(family.arch_for(dataset), dataset=dataset), path).eval()
    with torch.no_grad():
        assert torch.equal(model(x[:4]), loaded(x[:4])), "the loaded model computes other logits"
    differ = [k for k, v in _state(model).items() if not torch.equal(v, _state(loaded)[k])]
    assert not differ, f"tensors {differ} differ after the round trip"
    return f"{len(_state(model))} tensors"


def _resume(family: Family, dataset: str) -> str:
    x, y = _data(family, dataset)
    whole = _build(family, dataset)
    fit(whole, x, y, _config(2), progress=False, announce=False)
    resumed = _build(family, dataset)

    def stop(epoch: int, record: object) -> None:  # the second epoch ends before its state is saved
        if epoch == 1:
            raise _Interrupted

    with tempfile.TemporaryDirectory() as tmp:
        try:
            fit(resumed, x, y, _config(2), on_epoch_end=stop, progress=False, state_dir=Path(tmp), announce=False)
        except _Interrupted:
            pass
        fresh = _build(family, dataset, seed=1)  # a new process: another model, whatever it holds
        fit(fresh, x, y, _config(2), progress=False, state_dir=Path(tmp), resume=True, announce=False)
    differ = [k for k, v in _state(whole).items() if not torch.equal(v, _state(fresh)[k])]
    assert not differ, f"after resuming, tensors {differ} differ from an uninterrupted run"
    return "2 epochs, the second lost and trained again from the saved first"


def _deterministic(family: Family, dataset: str) -> str:
    x, y = _data(family, dataset)
    runs = []
    for _ in range(2):
        model = _build(family, dataset)
        fit(model, x, y, _config(1), progress=False, announce=False)
        runs.append(_state(model))
    differ = [k for k in runs[0] if not torch.equal(runs[0][k], runs[1][k])]
    assert not differ, f"two runs with the same seed differ in {differ}"
    return "same bytes twice"


CHECKS: dict[str, Callable[[Family, str], str]] = {
    "builds and returns logits": _builds,
    "one step trains": _trains,
    "checkpoint round trip": _round_trip,
    "resume": _resume,
    "determinism": _deterministic,
}


def check_family(name: str, dataset: str | None = None) -> list[CheckResult]:
    """Run every check of the contract on family ``name`` (on ``dataset``'s shape; default: its first dataset)."""
    family = get_family(name)
    dataset = dataset or family.default_dataset
    results = []
    for check, run in CHECKS.items():
        try:
            results.append(CheckResult(check, True, run(family, dataset)))
        except Exception as exc:  # noqa: BLE001 - a failing check is reported, whatever it raised
            results.append(CheckResult(check, False, f"{type(exc).__name__}: {exc}"))
    return results
