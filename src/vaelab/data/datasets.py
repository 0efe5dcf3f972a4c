"""MNIST-family data: IDX files -> one uint8 tensor on the training device -> batches.

Files are the standard IDX names under `<data-dir>/<dataset>/`, gzipped (checked against the
published MD5) or raw. Missing files are downloaded from the mirrors torchvision uses,
verified, and renamed into place, so a failed download never leaves a half-written file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .download import fetch, md5sum
from .idx import read_idx

IMAGE_SIZE = 28
PIXELS = IMAGE_SIZE * IMAGE_SIZE
PIXEL_LEVELS = 255  # uint8 images: intensity v means v / 255
SPLIT_SEED = 0  # fixes which training images are held out for validation, for every run
EVAL_BINARIZE_SEED = 0  # the validation and test sets are binarized once with this seed


@dataclass(frozen=True)
class DatasetSpec:
    folder: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # gz file name -> MD5 of the published file
    classes: tuple[str, ...]


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        folder="mnist",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        md5={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        classes=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": DatasetSpec(
        folder="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
             "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "kmnist": DatasetSpec(
        folder="kmnist",
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        md5={"train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
             "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
             "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
             "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134"},
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}
SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def default_data_dir() -> Path:
    """`$VAELAB_DATA_DIR`, else the user cache directory (e.g. ~/.cache/vaelab/data)."""
    if os.environ.get("VAELAB_DATA_DIR"):
        return Path(os.environ["VAELAB_DATA_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vaelab")) / "data"


def _locate(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def ensure_files(dataset: str, data_dir: str | Path | None = None, download: bool = True,
                 splits: tuple[str, ...] = ("train", "test")) -> Path:
    """Make sure the dataset's IDX files are in `<data_dir>/<dataset>/`; return that folder."""
    spec = DATASETS[dataset]
    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    folder = folder / spec.folder
    stems = [stem for split in splits for stem in SPLIT_FILES[split]]
    missing = [f"{stem}.gz" for stem in stems if _locate(folder, stem) is None]
    if not missing:
        return folder
    reason = "downloading is switched off"
    if download:
        created = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name in missing:
                fetch(spec.mirrors, name, spec.md5[name], folder)
            return folder
        except (DataError, OSError) as e:
            reason = f"the download failed: {e}"
            for made in created:  # leave no empty folders behind
                if made.is_dir() and not any(made.iterdir()):
                    made.rmdir()
    raise DataError(f"{folder} lacks {', '.join(missing)} ({reason}): put them there, or "
                    f"point --data-dir or VAELAB_DATA_DIR at a folder holding {spec.folder}/")


def load_split(dataset: str, split: str, data_dir: str | Path | None = None,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images (N, 1, 28, 28) uint8, labels (N,) int64) for "train" or "test"."""
    spec = DATASETS[dataset]
    folder = ensure_files(dataset, data_dir, download, splits=(split,))
    images_path, labels_path = (_locate(folder, stem) for stem in SPLIT_FILES[split])
    for path in (images_path, labels_path):
        expected = spec.md5.get(path.name)
        if expected and md5sum(path) != expected:
            raise DataError(f"{path}: checksum mismatch (expected MD5 {expected}); the file is "
                            f"corrupt or not the published {dataset} file: delete it to "
                            f"download it again")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{images_path}: expected images of shape (N, 28, 28), "
                        f"got {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path}: expected {len(images)} labels to match "
                        f"{images_path.name}, got shape {labels.shape}")
    if labels.size and labels.max() >= len(spec.classes):
        raise DataError(f"{labels_path}: label {labels.max()} out of range "
                        f"0..{len(spec.classes) - 1}")
    return (torch.from_numpy(images).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


# --- In-memory splits and batches ----------------------------------------------------------

@dataclass(frozen=True)
class Split:
    """Images (N, 1, 28, 28) uint8 in 0..255 and labels (N,) int64, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Datasets:
    """Training images, the held-out validation images and the test set.

    In binarized mode `val` and `test` are binarized once (fixed seed) and stored as 0/255,
    so every evaluation sees the same binary images; `train` stays grayscale and is
    binarized afresh for every batch (dynamic binarization).
    """

    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]  # empty for unlabelled images
    dynamic_binarization: bool
    mode: str = "binarized"  # the data mode, resolved (see resolve_mode)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images."""
        return tuple(self.train.images.shape[1:])


def binarize_once(images: torch.Tensor, seed: int = EVAL_BINARIZE_SEED) -> torch.Tensor:
    """One fixed Bernoulli draw per pixel, returned as uint8 0/255 (on the CPU generator)."""
    generator = torch.Generator().manual_seed(seed)
    probs = images.cpu().float() / 255
    return (torch.bernoulli(probs, generator=generator) * 255).to(torch.uint8).to(images.device)


def resolve_mode(cfg: DataConfig, channels: int) -> str:
    """The data mode, with "auto" resolved (binarized for the MNIST family's IDX datasets,
    else the values as they are), checked against the images' channels."""
    mode = cfg.mode
    if mode == "auto":
        mode = "binarized" if cfg.dataset in DATASETS else (
            "grayscale" if channels == 1 else "colour")
    if mode in ("binarized", "grayscale") and channels != 1:
        raise DataError(f"--data {mode} is for grayscale images; {cfg.dataset} has {channels} "
                        f"channels: use --data colour, or --channels 1 to convert them")
    if mode == "colour" and channels != 3:
        raise DataError(f"--data colour is for colour images; {cfg.dataset} has 1 channel: "
                        f"use --data grayscale, or --channels 3")
    return mode


def stored_splits(cfg: DataConfig, data_dir=None, download: bool = True, log=None,
                  train: bool = True) -> tuple[Split | None, Split, tuple[str, ...]]:
    """(training split, test split, class names) of any source, as stored (uint8); the
    training split is None when `train` is False and it would cost a read of its own."""
    if cfg.dataset in DATASETS:
        splits = ("train", "test") if train else ("test",)
        ensure_files(cfg.dataset, data_dir, download, splits)  # one message, every file
        read = {split: Split(*load_split(cfg.dataset, split, data_dir, download))
                for split in splits}
        if cfg.image_size or cfg.channels:
            from .arrays import resize_and_convert

            images = resize_and_convert({k: v.images for k, v in read.items()},
                                        cfg.image_size, cfg.channels)
            read = {k: Split(images[k], v.labels) for k, v in read.items()}
        return read.get("train"), read["test"], DATASETS[cfg.dataset].classes
    from .sources import check_unchanged, read_images

    check_unchanged(cfg)
    found = read_images(cfg, data_dir, download, log)
    train, test = (Split(found.images[s], found.labels[s]) for s in ("train", "test"))
    return train, test, found.classes


def load_test(cfg: DataConfig, data_dir: str | Path | None = None,
              device: torch.device | str = "cpu", download: bool = True) -> Split:
    """The test split as evaluation sees it (binarized once, with a fixed seed, if asked)."""
    _, test, _ = stored_splits(cfg, data_dir, download, train=False)
    if resolve_mode(cfg, test.images.shape[1]) == "binarized":
        test = Split(binarize_once(test.images, EVAL_BINARIZE_SEED), test.labels)
    return test.to(device)


def load_dataset(cfg: DataConfig, data_dir: str | Path | None = None,
                 device: torch.device | str = "cpu", download: bool = True,
                 log=None) -> Datasets:
    """Load the train/val/test splits described by `cfg` onto `device`."""
    stored, test, classes = stored_splits(cfg, data_dir, download, log)
    images, labels = stored.images, stored.labels
    mode = resolve_mode(cfg, images.shape[1])
    if mode == "binarized":
        test = Split(binarize_once(test.images, EVAL_BINARIZE_SEED), test.labels)
    test = test.to(device)
    if cfg.val_size >= len(images):
        raise DataError(f"data.val_size {cfg.val_size} leaves no training images "
                        f"(the training split has {len(images)})")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    train_idx, val_idx = order[:len(images) - cfg.val_size], order[len(images) - cfg.val_size:]
    if cfg.limit:
        train_idx = train_idx[:cfg.limit]
    train = Split(images[train_idx], labels[train_idx])
    val = Split(images[val_idx], labels[val_idx])
    binarized = mode == "binarized"
    if binarized:
        val = Split(binarize_once(val.images, EVAL_BINARIZE_SEED + 1), val.labels)
    return Datasets(train.to(device), val.to(device), test, classes, binarized, mode)


def described_by(cfg, data: Datasets) -> dict[str, object]:
    """What a run records of its data in its config, as overrides of `cfg` (a Config): the
    resolved mode, the class names, a path dataset's file-name digest, and the image shape
    and class count its model is built for. Conditional models need labelled images."""
    from .sources import listing_fingerprint

    if cfg.model.is_conditional and not data.classes:
        raise DataError(f"{cfg.data.dataset} has no classes (no class folders or labels), so "
                        f"it cannot train a conditional model")
    model = dataclasses.replace(cfg.model, image_shape=data.shape)
    if data.mode == "binarized" and model.likelihood_name != "bernoulli":
        raise DataError(f"binarized pixels are 0 or 1: they need the bernoulli likelihood, "
                        f"not {model.likelihood_name}")
    return {"data.mode": data.mode, "data.classes": list(data.classes),
            "data.fingerprint": listing_fingerprint(cfg.data),
            "model.image_shape": list(data.shape), "model.likelihood": model.likelihood_name,
            "model.num_classes": max(2, len(data.classes))}


RECORDED = ("data.mode", "data.classes", "data.fingerprint", "model.image_shape",
            "model.likelihood", "model.num_classes")  # the keys `described_by` fills


def class_names(cfg: DataConfig) -> tuple[str, ...]:
    """A run's class names: as it recorded them, else (runs before they were recorded) the
    built-in dataset's."""
    return cfg.classes or DATASETS[cfg.dataset].classes


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 in [0, 1]."""
    return images.float().div_(PIXEL_LEVELS)


def dynamic_binarize(images: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """A fresh Bernoulli(v / 255) draw for each uint8 pixel v, given uniform noise on [0, 1)
    of the same shape: the pixel is on when 255 u < v. Returns floats 0/1.

    Thresholding noise drawn with `torch.rand` is 4x faster than `torch.bernoulli` on CPU,
    and the noise can be drawn for a whole global batch and sliced (see training/batches.py)."""
    return (uniform * PIXEL_LEVELS < images).float()


def eval_batches(split: Split, batch_size: int):
    """Yield (x (B, 1, 28, 28) float in [0, 1], labels) in order, without shuffling."""
    for start in range(0, len(split), batch_size):
        yield (to_float(split.images[start:start + batch_size]),
               split.labels[start:start + batch_size])
