"""The epoch loop shared by every learning rule: shuffling, augmentation, devices, data parallelism, progress,
per-epoch history and resumable state.

The rule itself is the family's :class:`~zoo.engine.trainer.Trainer`; this loop only feeds it batches, so
``fit`` fine-tunes any zoo model with its own learning rule.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from zoo.engine.devices import model_device
from zoo.engine.distributed import SINGLE, Collective, dropout_sharded_over
from zoo.engine.fit_inputs import FitInputs, check_fit_inputs
from zoo.engine.train_state import load_train_state, save_train_state, saved_epochs
from zoo.registry import CFG_ATTRIBUTE, family_of

AUGMENTATIONS = ("none", "shift", "crop_flip")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")

EpochRecord = dict[str, Any]


@dataclass(frozen=True)
class FitConfig:
    """How long and on what the rule trains; ``rule`` holds the rule's own hyperparameters.

    ``augment``: ``"none"``; ``"shift"`` (translate each image by up to ``max_shift`` pixels, zero fill: a random
    crop of the zero-padded image); ``"crop_flip"`` (the same crop, then a horizontal flip with probability 1/2:
    the standard CIFAR-10 augmentation with ``max_shift=4``; ``max_shift=0`` flips only, which the fully connected
    CIFAR-10 recipes use: measured on ``bp_mlp``, 8 epochs, flips alone gave 56.2 % after 6 epochs where 2-pixel
    crops and flips gave 50.4 %, since an MLP has no translation invariance to learn the crops with).

    ``memory_format``: the layout the model and its batches train in. ``"auto"`` trains a model with convolutions in
    channels-last, which is faster on the CPU (``benchmarks/memory_format.py`` prints the ratio; a ResNet-20 step
    took 0.79x the time on one thread), and any other model in the default layout; ``"channels_last"`` and
    ``"contiguous"`` force one. The layout changes the arithmetic's order, so it is part of the recipe: the same
    layout, seed and thread count give the same bytes. The model is returned in the default layout.
    """

    epochs: int
    batch_size: int = 100
    seed: int = 0
    augment: str = "none"
    max_shift: int = 2
    memory_format: str = "auto"
    rule: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, model: nn.Module, **changes: Any) -> "FitConfig":
        """The configuration ``model``'s checkpoint was trained with (its manifest entry's recipe), with ``changes``
        applied: ``FitConfig.from_checkpoint(model, epochs=3)``. ``rule`` in ``changes`` updates the recipe's rule
        options key by key (``rule={"lr": 1e-4}`` keeps the others). Lists what a rule accepts:
        ``family_of(model).trainer.options``."""
        from zoo.api import get_weights

        cfg = getattr(model, CFG_ATTRIBUTE, None)
        if cfg is None or cfg.id is None:
            raise ValueError("FitConfig.from_checkpoint needs a pretrained zoo model (zoo.load(ID)); this model has no "
                             "checkpoint id. Build a FitConfig(epochs=..., rule={...}) instead")
        recorded = dict(get_weights(cfg.id).entry.recipe["config"]["fit"])
        unknown = sorted(set(changes) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"FitConfig.from_checkpoint: unknown field(s) {unknown}; accepted: "
                             f"{sorted(f.name for f in fields(cls))}")
        rule = {**recorded.get("rule", {}), **dict(changes.pop("rule", {}))}
        return cls(**{**recorded, **changes, "rule": rule})

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.augment!r}; accepted: {AUGMENTATIONS}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ValueError(f"unknown memory_format {self.memory_format!r}; accepted: {MEMORY_FORMATS}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs} and {self.batch_size}")


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by up to ``max_shift`` pixels in each direction, filling with zeros (vectorised)."""
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n, 1, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n, 1, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, 1, h, 1) + dy
    cols = torch.arange(w).view(1, 1, 1, w) + dx
    return padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]


def random_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def training_layout(model: nn.Module, memory_format: str) -> torch.memory_format:
    """The :class:`torch.memory_format` ``model`` trains in for :attr:`FitConfig.memory_format`."""
    if memory_format == "auto":
        has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
        return torch.channels_last if has_conv else torch.contiguous_format
    return torch.channels_last if memory_format == "channels_last" else torch.contiguous_format


def augment(x: Tensor, config: FitConfig, generator: torch.Generator) -> Tensor:
    """``config.augment`` applied to a batch of float images."""
    if config.augment == "none":
        return x
    x = random_shift(x, config.max_shift, generator)
    return random_flip(x, generator) if config.augment == "crop_flip" else x


def fit(model: nn.Module, images: Tensor | np.ndarray, labels: Tensor | np.ndarray, config: FitConfig, *,
        on_epoch_end: Callable[[int, EpochRecord], None] | None = None, progress: bool | None = None,
        state_dir: Path | None = None, resume: bool = False, collective: Collective = SINGLE,
        announce: bool = True) -> list[EpochRecord]:
    """Train ``model`` with its own learning rule on ``images`` ``[N, C, H, W]`` and return one record per epoch
    (``epoch``, ``train_loss``, ``wall_s`` and what ``on_epoch_end`` added to it).

    ``images`` are what the model takes, float images in ``[0, 1]``, or uint8 images (0-255), which are scaled per
    batch; ``labels`` are integer class indices. Tensors or NumPy arrays; shapes, dtypes, value ranges and label
    counts are checked before anything trains (:mod:`zoo.engine.fit_inputs`).

    ``model`` is a zoo model (pretrained or untrained): its ``model.zoo_cfg`` names its family, whose trainer runs
    the rule with the options in ``config.rule`` (:meth:`FitConfig.from_checkpoint` starts from the options the
    checkpoint was trained with). With ``announce``, one line on stderr says what the rule will train before it starts.

    The model trains on the device it is on; batches are built on the CPU (so augmentation draws the same numbers
    on every device) and moved there. ``on_epoch_end(epoch, record)`` runs after every epoch (e.g. to evaluate and
    add ``test_top1``). ``progress``: a tqdm bar per epoch, by default only when stderr is a terminal.
    With ``state_dir``, the whole training state is saved there after every epoch (:mod:`zoo.engine.train_state`);
    ``resume=True`` continues from it, giving the same result as a run that was never interrupted.
    ``collective`` (:mod:`zoo.engine.distributed`): each process trains on its shard of every global batch, with the
    dropout masks of the whole global batch.
    """
    family_of(model)  # a clear error for a model that is not a zoo model
    images, labels, scale = check_fit_inputs(model, images, labels)
    if len(images) < 1:
        raise ValueError("no training images: the training set is empty")
    if collective.distributed and len(images) % config.batch_size:
        raise ValueError(f"data-parallel training needs whole global batches: {len(images)} training images do "
                         f"not split into batches of {config.batch_size}")
    layout = training_layout(model, config.memory_format)
    model.to(memory_format=layout)  # type: ignore[call-overload]
    try:
        with dropout_sharded_over(model, collective):
            return _train(model, FitInputs(images, labels, scale), config, layout, on_epoch_end=on_epoch_end,
                          progress=progress, state_dir=state_dir, resume=resume, collective=collective,
                          announce=announce)
    finally:
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def _train(model: nn.Module, data: FitInputs, config: FitConfig, layout: torch.memory_format, *,
           on_epoch_end: Callable[[int, EpochRecord], None] | None, progress: bool | None, state_dir: Path | None,
           resume: bool, collective: Collective, announce: bool) -> list[EpochRecord]:
    """The epoch loop of :func:`fit`, with the model already in ``layout``."""
    images, labels = data.images, data.labels
    family = family_of(model)
    shard = collective.shard_size(config.batch_size)
    device = model_device(model)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = (len(images) + config.batch_size - 1) // config.batch_size
    trainer = family.trainer(model, config.rule, steps_per_epoch, config.epochs, collective=collective)
    history: list[EpochRecord] = []
    if resume and state_dir is not None and saved_epochs(state_dir) is not None:
        saved, trainer_state = load_train_state(state_dir, model=model, generator=generator)
        trainer.load_state_dict(trainer_state)
        history = list(saved.extra["history"])
    if announce and collective.is_main:
        print(f"fit {family.name}: {trainer.describe()}", file=sys.stderr, flush=True)
    show = (sys.stderr.isatty() if progress is None else progress) and collective.is_main
    for epoch in range(len(history), config.epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(images), generator=generator)
        total = torch.zeros((), dtype=torch.float64)
        bar = tqdm(range(steps_per_epoch), desc=f"{family.name} epoch {epoch + 1}/{config.epochs}",
                   disable=not show, leave=False)
        for step in bar:
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            x = images[index].to(torch.float32)
            x = augment(x.div_(data.scale) if data.scale != 1.0 else x, config, generator)
            x = x.contiguous(memory_format=layout)
            y = labels[index]
            if collective.distributed:  # this process's rows of the global batch
                part = slice(collective.rank * shard, (collective.rank + 1) * shard)
                x, y = x[part], y[part]
            loss = trainer.step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            total += loss
            bar.set_postfix(loss=f"{loss:.4f}")
        collective.mean_(total)
        record: EpochRecord = {"epoch": epoch + 1, "train_loss": round(float(total) / steps_per_epoch, 6),
                               "wall_s": round(time.perf_counter() - start, 2)}
        model.eval()
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        history.append(record)
        if state_dir is not None and collective.is_main:
            save_train_state(state_dir, model=model, trainer_state=trainer.state_dict(), generator=generator,
                             epochs_done=epoch + 1, extra={"history": history})
    return history
