"""Data-parallel training: what the processes of one run share, and a single-process stand-in.

Under ``torchrun`` every process holds the whole model, takes its shard of every global batch and, before
each update, combines what its shard computed with the other processes':

* gradient-style rules average their parameters' ``.grad`` (:meth:`Collective.average_`), which equals the
  gradient of the batch-mean loss of the whole global batch;
* local (Hebbian) rules sum or average the update they computed before applying it.

``Collective()`` (one process) makes every operation a no-op, so the rules call the same methods whether or
not they run data-parallel. Randomness drawn per sample (e.g. target propagation's corruption noise, and every
dropout mask: :class:`ShardedDropout`) is drawn for the whole global batch with the generator every process shares
and sliced with :meth:`Collective.local`, so one process and ``N`` processes draw the same numbers.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Collective:
    """The processes of one training run: ``rank`` of ``world`` (``world == 1``: a single process)."""

    rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        """Whether more than one process trains."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    def sum_(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over the processes, in place."""
        if self.distributed:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def mean_(self, tensor: Tensor) -> Tensor:
        """Average ``tensor`` over the processes, in place."""
        if self.distributed:
            self.sum_(tensor).div_(self.world)
        return tensor

    def average_(self, grads: Iterable[Tensor | None]) -> None:
        """Average every gradient over the processes, in place (``None`` entries are skipped)."""
        if self.distributed:
            for grad in grads:
                if grad is not None:
                    self.mean_(grad)

    def local(self, global_batch: Tensor) -> Tensor:
        """This process's rows of a tensor drawn for the whole global batch (dimension 0)."""
        if not self.distributed:
            return global_batch
        size = global_batch.shape[0] // self.world
        return global_batch[self.rank * size:(self.rank + 1) * size]

    def shard_size(self, global_batch_size: int) -> int:
        """Rows of a global batch this process takes; the batch must split evenly."""
        if global_batch_size % self.world:
            raise ValueError(f"batch_size {global_batch_size} does not split evenly over {self.world} processes; "
                             f"use a multiple of {self.world}")
        return global_batch_size // self.world


SINGLE = Collective()


class ShardedDropout(nn.Dropout):
    """``nn.Dropout`` whose masks are drawn for the whole global batch of a data-parallel run and sliced to this
    process's rows, so ``N`` processes train to the weights one process gets. In one process it draws exactly what
    ``nn.Dropout`` draws on the CPU (the same ``bernoulli_`` on a tensor of the input's shape), so single-process
    results are unchanged. :func:`zoo.engine.fit.fit` sets :attr:`collective` for the length of a run."""

    collective: Collective = SINGLE

    def forward(self, x: Tensor) -> Tensor:
        """``x`` with each element zeroed with probability ``p`` and the rest scaled by ``1 / (1 - p)``
        (training mode); ``x`` itself in eval mode or with ``p == 0``."""
        if not self.training or self.p == 0.0 or x.numel() == 0:
            return x
        if not self.collective.distributed:
            noise = torch.empty_like(x)
        else:
            noise = x.new_empty((x.shape[0] * self.collective.world, *x.shape[1:]))
        noise = self.collective.local(noise.bernoulli_(1.0 - self.p))
        return x * noise.div_(1.0 - self.p) if self.p < 1.0 else x * noise


@contextmanager
def dropout_sharded_over(model: nn.Module, collective: Collective) -> Iterator[None]:
    """While the block runs, every :class:`ShardedDropout` of ``model`` draws its masks for ``collective``'s global
    batches; afterwards they draw for the batch they get again."""
    layers = [m for m in model.modules() if isinstance(m, ShardedDropout)]
    for layer in layers:
        layer.collective = collective
    try:
        yield
    finally:
        for layer in layers:
            layer.collective = SINGLE


def from_environment(device: torch.device) -> Collective:
    """The run's :class:`Collective`: one process, or (under ``torchrun``, ``WORLD_SIZE > 1``) this process's
    place in a process group it joins here (NCCL for CUDA devices, gloo otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Collective(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size())
