"""How each epoch's training batches are drawn.

`--batch-size` is the global batch. An `EpochPlan` says which rows of every global batch
this process takes (all of them in a single process); `epoch_source` says where the images
come from; `draw_batch` makes one batch and its noise. The noise (binarization thresholds
and reparameterization samples) is drawn for the whole global batch and sliced, so any
number of processes sees the same draws as one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.datasets import Split, dynamic_binarize, to_float
from .distributed import World


@dataclass(frozen=True)
class EpochPlan:
    """How one epoch's global batches split across processes, for this process."""

    sizes: list[int]  # global batch sizes
    rows: list[tuple[int, int]]  # this rank's [start, stop) within each global batch
    offsets: list[int]  # where each of this rank's batches starts in its shard

    @classmethod
    def make(cls, n: int, batch_size: int, world: World) -> EpochPlan:
        sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
        rows = [world.rows(size) for size in sizes]
        offsets = [0]
        for lo, hi in rows[:-1]:
            offsets.append(offsets[-1] + hi - lo)
        return cls(sizes, rows, offsets)

    def shard_index(self, perm: torch.Tensor, batch_size: int) -> torch.Tensor:
        """The positions in the training set of this rank's images, batch after batch."""
        if all(hi - lo == size for (lo, hi), size in zip(self.rows, self.sizes)):
            return perm  # a single process takes every row
        return torch.cat([perm[b * batch_size + lo:b * batch_size + hi]
                          for b, (lo, hi) in enumerate(self.rows)])


def epoch_source(train: Split, plan: EpochPlan, perm: torch.Tensor, batch_size: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Where this epoch's batches come from, as `draw_batch` takes them: on a CPU, the one
    host copy of the images and labels and this rank's order; elsewhere, this rank's shard
    copied to the device once per epoch (through pinned memory on GPUs), already in order."""
    order = plan.shard_index(perm, batch_size)
    if device.type == "cpu":
        return train.images, train.labels, order
    staged = [train.images[order], train.labels[order]]
    if device.type == "cuda":
        staged = [t.pin_memory() for t in staged]
    images, labels = (t.to(device, non_blocking=True) for t in staged)
    return images, labels, None


def draw_batch(source: torch.Tensor, labels: torch.Tensor, order: torch.Tensor | None,
               plan: EpochPlan, b: int, noise_shape: tuple[int, ...], binarize: bool,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This rank's images of global batch b, as floats in [0, 1] (binarized afresh if asked),
    their labels, and their reparameterization noise, (B, *noise_shape): (latent_dim,) for
    the ELBO, (K, latent_dim) for the K-sample bounds. `source` and `labels` are indexed by
    `order`, or are this rank's shard already in order (`order` None). Noise is drawn for
    the whole global batch and sliced, so every number of processes sees the same draws."""
    (lo, hi), size, start = plan.rows[b], plan.sizes[b], plan.offsets[b]
    rows = slice(start, start + hi - lo)
    index = rows if order is None else order[rows]
    pixels = source[index]  # (B, 1, 28, 28) uint8
    if binarize:
        uniform = torch.rand((size, *pixels.shape[1:]), generator=generator,
                             device=pixels.device)
        x = dynamic_binarize(pixels, uniform[lo:hi])
    else:
        x = to_float(pixels)
    noise = torch.randn(size, *noise_shape, generator=generator, device=pixels.device)[lo:hi]
    return x, labels[index].to(x.device), noise
