"""A user's images in memory: what every reader (image folder, array file, CIFAR binary)
returns, and the checks they share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError

UNLABELLED = -1  # the label of every image of an unlabelled collection


@dataclass(frozen=True)
class ImageSet:
    """Images (N, C, H, W) uint8 per split ("train", and "test" when the source has one),
    their labels (N,) int64 (UNLABELLED throughout when the source has no classes), and
    the class names in label order (empty when unlabelled)."""

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    classes: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images["train"].shape[1:])

    @property
    def labelled(self) -> bool:
        return bool(self.classes)


def to_nchw(array: np.ndarray, where: str) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) with C in {1, 3, 4} -> (N, C, H, W) tensor; an alpha
    channel is dropped. Anything else is a DataError naming `where`."""
    if array.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8 (0..255), got {array.dtype}; "
                        f"scale and convert them with array.astype(np.uint8)")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or min(array.shape) == 0:
        raise DataError(f"{where}: expected images of shape (N, H, W) or (N, H, W, C) with "
                        f"C 1 or 3, got {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array[..., :3].transpose(0, 3, 1, 2)))


def check_labels(labels: np.ndarray, count: int, where: str) -> torch.Tensor:
    """Integer labels (N,) matching `count` images -> int64 tensor."""
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(f"{where}: expected {count} labels, one per image, got shape "
                        f"{labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got {labels.dtype}")
    if count and labels.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, got {labels.min()}")
    return torch.from_numpy(labels.astype(np.int64))
