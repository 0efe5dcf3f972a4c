"""Images from NumPy files: `.npy` (images only) or `.npz` (images, and optionally labels,
class names and a train/test split), read with allow_pickle=False.

An `.npz` is read by these names, the first that is present:
    images  x_train, images, x        labels  y_train, labels, y
    test    x_test with y_test        classes classes (strings, in label order)
Images are uint8 (N, H, W) or (N, H, W, C), C 1 or 3.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .imageset import UNLABELLED, ImageSet, check_labels, to_nchw

IMAGE_KEYS = ("x_train", "images", "x")
LABEL_KEYS = ("y_train", "labels", "y")


def read_array(path: str | Path, image_size: int = 0, channels: int = 0) -> ImageSet:
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)  # object arrays (pickles) are refused
        if isinstance(loaded, np.ndarray):
            found = {"images": loaded}
        else:
            with loaded:
                found = {key: loaded[key] for key in loaded.files}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable NumPy file ({e})") from None
    arrays, names = _npz_parts(path, found)
    images, labels = {}, {}
    for split, (pixels, y) in arrays.items():
        where = f"{path} ({split})" if len(arrays) > 1 else str(path)
        images[split] = to_nchw(pixels, where)
        labels[split] = (check_labels(y, len(pixels), where) if y is not None else
                         torch.full((len(pixels),), UNLABELLED, dtype=torch.long))
    classes = _classes(path, labels, names)
    return ImageSet(resize_and_convert(images, image_size, channels), labels, classes)


def _npz_parts(path: Path, found: dict[str, np.ndarray]):
    image_key = next((key for key in IMAGE_KEYS if key in found), None)
    if image_key is None:
        raise DataError(f"{path}: no images in it; name the array one of "
                        f"{', '.join(IMAGE_KEYS)} (found: {', '.join(found) or 'nothing'})")
    label_key = next((key for key in LABEL_KEYS if key in found), None)
    parts = {"train": (found[image_key], found[label_key] if label_key else None)}
    if "x_test" in found:
        if (label_key is None) != ("y_test" not in found):
            raise DataError(f"{path}: give labels for both splits (y_train and y_test) or "
                            f"for neither")
        parts["test"] = (found["x_test"], found.get("y_test"))
    names = found.get("classes")
    return parts, None if names is None else [str(name) for name in names.tolist()]


def _classes(path: Path, labels: dict[str, torch.Tensor], names: list[str] | None
             ) -> tuple[str, ...]:
    if (labels["train"] == UNLABELLED).all():
        return ()
    top = int(max(y.max() for y in labels.values() if len(y)))
    if names is None:
        return tuple(str(c) for c in range(top + 1))
    if top >= len(names):
        raise DataError(f"{path}: label {top} has no name in 'classes' ({len(names)} names)")
    return tuple(names)


def resize_and_convert(images: dict[str, torch.Tensor], image_size: int, channels: int
                       ) -> dict[str, torch.Tensor]:
    """Resize (N, C, H, W) uint8 images to S x S as image folders are (shorter side, then
    the centre crop; Lanczos), and convert them to `channels` (0: keep)."""
    from .folders import to_channels

    if image_size:
        from PIL import Image, ImageOps

        def fit(pixels: np.ndarray) -> np.ndarray:
            image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
            out = np.asarray(ImageOps.fit(image, (image_size, image_size),
                                          Image.Resampling.LANCZOS))
            return out if out.ndim == 3 else out[..., None]

        images = {split: torch.from_numpy(np.stack([fit(p) for p in x.permute(0, 2, 3, 1)
                                                    .numpy()]).transpose(0, 3, 1, 2))
                  for split, x in images.items()}
    if channels:
        images = {split: torch.from_numpy(np.stack([to_channels(p, channels) for p in
                                                    x.permute(0, 2, 3, 1).numpy()]))
                  for split, x in images.items()}
    return images
