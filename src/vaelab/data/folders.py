"""Image folders: a user's own images as files (PNG, JPEG, anything Pillow reads).

    DIR/*.png                        unlabelled
    DIR/<class>/*.png                one sub-folder per class: its name is the class name
    DIR/train/...  DIR/test/...      a split made by the user, each part laid out as above

Files are read in name order (folders and files sorted, hidden ones skipped) and decoded on
a pool of threads (Pillow releases the GIL while it decodes). Grayscale stays one channel
unless another image is in colour; colour images whose three channels are equal everywhere
count as grayscale. `image_size` resizes every image to S x S: the shorter side to S with
Pillow's antialiasing (Lanczos), then the centre crop, so the aspect ratio is kept.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .imageset import UNLABELLED, ImageSet

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
SPLITS = ("train", "test")


def image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _images_in(folder: Path, extensions: set[str]) -> list[Path]:
    return [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in extensions]


def list_part(folder: Path, extensions: set[str]) -> tuple[list[Path], list[str], list[str]]:
    """(files, the class name of each file or [] when unlabelled, class names) of one part."""
    loose = _images_in(folder, extensions)
    class_dirs = [p for p in _visible(folder) if p.is_dir() and _images_in(p, extensions)]
    if loose and class_dirs:
        raise DataError(f"{folder} holds both image files and class folders "
                        f"({class_dirs[0].name}/, ...): put every image in a class folder, "
                        f"or all of them directly in {folder}")
    if loose:
        return loose, [], []
    if not class_dirs:
        raise DataError(f"{folder}: no image files here or in its sub-folders")
    if len(class_dirs) == 1:
        raise DataError(f"{folder} has a single class folder ({class_dirs[0].name}/): put its "
                        f"images directly in {folder} for unlabelled data, or add a folder "
                        f"per class")
    files, names = [], []
    for class_dir in class_dirs:
        found = _images_in(class_dir, extensions)
        files += found
        names += [class_dir.name] * len(found)
    return files, names, [d.name for d in class_dirs]


def read_folder(root: str | Path, image_size: int = 0, channels: int = 0) -> ImageSet:
    """Read an image folder (see the module docstring) into one uint8 tensor per split."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    extensions = image_extensions()
    parts = {name: root / name for name in SPLITS if (root / name).is_dir()}
    if "test" in parts and "train" not in parts:
        raise DataError(f"{root} has a test/ folder but no train/ folder")
    listed = {name: list_part(folder, extensions) for name, folder in
              (parts or {"train": root}).items()}
    labelled = {name: bool(names) for name, (_, names, _) in listed.items()}
    if len(set(labelled.values())) > 1:
        raise DataError(f"{root}: train/ and test/ must both have class folders, or neither")
    classes = listed["train"][2]
    for name, (_, _, found) in listed.items():
        if set(found) - set(classes):
            raise DataError(f"{root / name} has classes that train/ lacks: "
                            f"{', '.join(sorted(set(found) - set(classes)))}")
    decoded = {name: decode(files, image_size) for name, (files, _, _) in listed.items()}
    images = stack_all(decoded, image_size, channels)
    index = {name: i for i, name in enumerate(classes)}
    labels = {name: torch.tensor([index[c] for c in names] if names else
                                 [UNLABELLED] * len(files), dtype=torch.long)
              for name, (files, names, _) in listed.items()}
    return ImageSet(images, labels, tuple(classes))


def decode(files: list[Path], image_size: int) -> list[tuple[Path, np.ndarray]]:
    """Each file as an (H, W) or (H, W, 3) uint8 array, decoded on a pool of threads."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(zip(files, pool.map(lambda f: read_pixels(f, image_size), files)))


def open_image(path: Path, channels: int = 0):
    """One image file as a Pillow image in mode "L" (channels 1) or "RGB" (3), or as it is
    stored (0: "L" for grayscale files, else "RGB"). Transparent pixels count as black.
    An unreadable file is a DataError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode = {1: "L", 3: "RGB"}.get(channels) or (
                "L" if image.mode in GRAY_MODES else "RGB")
            if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
                background = Image.new("RGBA", image.size, (0, 0, 0, 255))
                image = Image.alpha_composite(background, image.convert("RGBA"))
            return image.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def read_pixels(path: Path, image_size: int = 0) -> np.ndarray:
    """One image file -> (H, W) uint8 if it is grayscale, else (H, W, 3), fitted to
    `image_size` squared if given (see the module docstring)."""
    from PIL import Image, ImageOps

    image = open_image(path)
    if image_size:
        image = ImageOps.fit(image, (image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def stack_all(decoded: dict[str, list[tuple[Path, np.ndarray]]], image_size: int,
              channels: int) -> dict[str, torch.Tensor]:
    """The decoded images of every split as (N, C, H, W) uint8, all of one size and one
    channel count (`channels`, else 3 if any image is truly in colour, else 1)."""
    every = [item for items in decoded.values() for item in items]
    first_path, first = every[0]
    for path, pixels in every:
        if pixels.shape[:2] != first.shape[:2]:
            raise DataError(f"images differ in size: {first_path} is "
                            f"{first.shape[1]}x{first.shape[0]}, {path} is "
                            f"{pixels.shape[1]}x{pixels.shape[0]}; pass --image-size S to "
                            f"resize them all to SxS")
    colour = any(p.ndim == 3 and not (np.array_equal(p[..., 0], p[..., 1]) and
                                      np.array_equal(p[..., 1], p[..., 2])) for _, p in every)
    channels = channels or (3 if colour else 1)
    return {name: torch.from_numpy(np.stack([to_channels(p, channels) for _, p in items]))
            for name, items in decoded.items()}


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) -> (channels, H, W); colour to gray by ITU-R 601 luma, as Pillow."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if channels == 1 and pixels.shape[2] == 3:
        luma = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        pixels = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    elif channels == 3 and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return pixels.transpose(2, 0, 1)
