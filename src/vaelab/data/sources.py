"""Where a run's images come from, other than the MNIST family's IDX files (datasets.py):
CIFAR-10's binary archive, or a user's own images, a folder of image files or a .npz / .npy
array. Each is read once into uint8 tensors (N, C, H, W), kept in the decoded cache, and
split into training and test images:

- a source with its own test split (train/ and test/ folders, x_test in a .npz, CIFAR-10)
  keeps it;
- otherwise a fixed, seeded tenth of the images (at most 10,000) is the test set. The
  split depends only on the sorted file names (or the array order) and SPLIT_SEED; the
  run records a fingerprint of the source's file names in its config, and a later command
  that finds the source changed says so instead of testing on other images.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ..config import DataConfig
from ..errors import DataError
from . import cache, cifar
from .arrays import read_array, resize_and_convert
from .folders import read_folder
from .imageset import ImageSet

SPLIT_SEED = 0
TEST_FRACTION = 0.1
MAX_TEST = 10_000
ARRAY_SUFFIXES = (".npz", ".npy")


def source_path(cfg: DataConfig) -> Path:
    """The path a user gave as the dataset, checked to be a folder or an array file."""
    path = Path(cfg.dataset).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix.lower() in ARRAY_SUFFIXES):
        return path
    if path.is_file():
        raise DataError(f"--dataset {cfg.dataset}: a file must be a .npz or .npy array; give "
                        f"a folder for image files")
    raise DataError(f"--dataset {cfg.dataset}: not a built-in dataset (mnist, fashion-mnist, "
                    f"kmnist, cifar10) and no such folder or file")


def read_images(cfg: DataConfig, data_dir: str | Path | None = None, download: bool = True,
                log=None) -> ImageSet:
    """The images of `cfg.dataset` (cifar10 or a path), resized and converted as `cfg`
    asks, with a "test" split (see the module docstring)."""
    options = f"s{cfg.image_size}-c{cfg.channels}"
    if cfg.dataset == "cifar10":
        from .datasets import default_data_dir

        folder = (Path(data_dir).expanduser() if data_dir else default_data_dir()) / cifar.FOLDER
        archive = cifar.ensure_archive(folder, download)
        images = cache.cached(archive, options, lambda: _converted(
            cifar.read_cifar10(archive), cfg), log)
    else:
        path = source_path(cfg)
        reader = read_folder if path.is_dir() else read_array
        images = cache.cached(path, options, lambda: reader(path, cfg.image_size,
                                                            cfg.channels), log)
    return with_test_split(images)


def _converted(images: ImageSet, cfg: DataConfig) -> ImageSet:
    if not (cfg.image_size or cfg.channels):
        return images
    return ImageSet(resize_and_convert(images.images, cfg.image_size, cfg.channels),
                    images.labels, images.classes)


def with_test_split(images: ImageSet) -> ImageSet:
    """`images` as they are if they have a test split, else with a seeded one carved out."""
    if "test" in images.images:
        return images
    count = len(images.images["train"])
    test = min(MAX_TEST, round(count * TEST_FRACTION))
    if count < 2 or test < 1:
        raise DataError(f"{count} image(s) are too few to train on and test with")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))
    parts = {"train": order[:count - test].sort().values,
             "test": order[count - test:].sort().values}
    return ImageSet({k: images.images["train"][i] for k, i in parts.items()},
                    {k: images.labels["train"][i] for k, i in parts.items()}, images.classes)


def listing_fingerprint(cfg: DataConfig) -> str:
    """A digest of the source's file names (relative paths, sorted), or of an array file's
    name and size: what the seeded split depends on. Empty for built-in datasets."""
    if cfg.builtin:
        return ""
    path = source_path(cfg)
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(f"{path.name}\0{path.stat().st_size}".encode())
    else:
        for folder, _, names in sorted(os.walk(path)):
            for name in sorted(names):
                digest.update(f"{Path(folder, name).relative_to(path)}\n".encode())
    return digest.hexdigest()[:16]


def check_unchanged(cfg: DataConfig) -> None:
    """Refuse a source whose files changed since the run recorded `cfg.fingerprint`."""
    if cfg.fingerprint and listing_fingerprint(cfg) != cfg.fingerprint:
        raise DataError(f"{cfg.dataset} has changed since this run was trained (files added, "
                        f"removed or renamed), so its test images would differ; restore it, "
                        f"or train a new run on it")


def download(name: str, data_dir: str | Path | None = None) -> Path:
    """Fetch a built-in dataset's files (`vaelab download`); return the folder."""
    from .datasets import SPLIT_FILES, default_data_dir, ensure_files

    if name == "cifar10":
        folder = (Path(data_dir).expanduser() if data_dir else default_data_dir()) / cifar.FOLDER
        return cifar.ensure_archive(folder).parent
    return ensure_files(name, data_dir, download=True, splits=tuple(SPLIT_FILES))
