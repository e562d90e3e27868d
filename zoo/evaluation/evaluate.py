"""Accuracy of a model on a dataset split: clean, under Gaussian noise and under FGSM; the spike rate of a spiking
model."""
from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from zoo.engine.devices import model_device
from zoo.evaluation.metric_grid import NOISE_SIGMAS, fgsm_epsilons, perturbation_size

EVAL_BATCH = 1000
NOISE_SEED = 0


def _batches(images: Tensor, labels: Tensor, batch_size: int,
             device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """Float batches in [0, 1] and their labels (on the CPU; moved to ``device`` by the caller)."""
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        x = x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)
        yield x, labels[start:start + batch_size].to(device)


def _percent(correct: int, total: int) -> float:
    return round(100.0 * correct / total, 4)


@torch.no_grad()
def top1(model: nn.Module, images: Tensor, labels: Tensor, *, noise_sigma: float = 0.0,
         batch_size: int = EVAL_BATCH) -> float:
    """Top-1 accuracy in percent. ``images`` are uint8 ``[N, C, H, W]`` (or float in [0, 1]).

    With ``noise_sigma > 0``, Gaussian noise of that standard deviation (on the [0, 1] scale, fixed seed)
    is added and the result clipped to [0, 1].
    """
    model.eval()
    device = model_device(model)
    generator = torch.Generator().manual_seed(NOISE_SEED)
    correct = 0
    for x, y in _batches(images, labels, batch_size, device):
        if noise_sigma > 0:
            x = (x + noise_sigma * torch.randn(x.shape, generator=generator)).clamp_(0.0, 1.0)
        correct += int((model(x.to(device)).argmax(1) == y).sum())
    return _percent(correct, len(labels))


def top1_fgsm(model: nn.Module, images: Tensor, labels: Tensor, eps: float, *,
              batch_size: int = EVAL_BATCH) -> float:
    """Top-1 accuracy in percent under the fast gradient sign attack of size ``eps`` (clipped to [0, 1])."""
    model.eval()
    device = model_device(model)
    correct = 0
    for x, y in _batches(images, labels, batch_size, device):
        x = x.to(device).requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x), y)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            adv = (x + eps * grad.sign()).clamp_(0.0, 1.0)
            correct += int((model(adv).argmax(1) == y).sum())
    return _percent(correct, len(labels))


@runtime_checkable
class SpikeCounter(Protocol):
    """A model of spiking neurons (:class:`zoo.rules.spiking.SpikingNetwork`)."""

    def count_spikes(self, x: Tensor) -> tuple[float, int]:
        """The spikes images ``x`` caused (summed over images, neurons and time steps) and the number of neurons."""
        ...


@torch.no_grad()
def spike_rate(model: SpikeCounter, images: Tensor, labels: Tensor, *, batch_size: int = EVAL_BATCH) -> float:
    """Mean number of spikes per neuron per image (over the model's time steps), an energy proxy."""
    assert isinstance(model, nn.Module)
    model.eval()
    device = model_device(model)
    counts = [model.count_spikes(x.to(device)) for x, _ in _batches(images, labels, batch_size, device)]
    return round(sum(spikes for spikes, _ in counts) / (counts[0][1] * len(labels)), 6)


def full_metrics(model: nn.Module, images: Tensor, labels: Tensor, dataset: str, *,
                 gradients: bool = True) -> dict[str, object]:
    """The manifest's metrics: ``top1``, ``n_eval``, ``top1_noise``, (where gradients exist) ``top1_fgsm`` at
    the ε of ``dataset`` (:mod:`zoo.evaluation.metric_grid`) and, for a spiking model, ``spike_rate``."""
    metrics: dict[str, object] = {
        "top1": top1(model, images, labels),
        "n_eval": int(len(labels)),
        "top1_noise": {s: top1(model, images, labels, noise_sigma=float(s)) for s in NOISE_SIGMAS},
    }
    if gradients:
        metrics["top1_fgsm"] = {e: top1_fgsm(model, images, labels, perturbation_size(e))
                                for e in fgsm_epsilons(dataset)}
    if isinstance(model, SpikeCounter):
        metrics["spike_rate"] = spike_rate(model, images, labels)
    return metrics
