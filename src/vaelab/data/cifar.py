"""CIFAR-10 from its official binary archive (`cifar-10-binary.tar.gz`, no pickle inside).

Each of the archive's six `.bin` files is a run of 3,073-byte records: the label (0-9),
then 1,024 red, 1,024 green and 1,024 blue bytes of a 32x32 image in row-major order.
`data_batch_1..5.bin` are the 50,000 training images, `test_batch.bin` the 10,000 test
images. The archive is read in place (nothing is extracted) after its MD5 is checked.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .download import fetch, md5sum
from .imageset import ImageSet

FOLDER = "cifar10"
ARCHIVE = "cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
RECORD = 1 + 3 * 32 * 32
MEMBERS = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}


def ensure_archive(folder: Path, download: bool = True) -> Path:
    """`folder/cifar-10-binary.tar.gz`, downloaded (and MD5-checked) if it is missing."""
    path = folder / ARCHIVE
    if not path.is_file():
        if not download:
            raise DataError(f"{folder} lacks {ARCHIVE} (downloading is switched off): put it "
                            f"there, or point --data-dir or VAELAB_DATA_DIR at a folder "
                            f"holding {FOLDER}/")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fetch(MIRRORS, ARCHIVE, MD5, folder)
        except DataError as e:
            raise DataError(f"{folder} lacks {ARCHIVE} (the download failed: {e}): put it "
                            f"there, or point --data-dir or VAELAB_DATA_DIR at a folder "
                            f"holding {FOLDER}/") from None
    elif md5sum(path) != MD5:
        raise DataError(f"{path}: checksum mismatch (expected MD5 {MD5}); the file is corrupt "
                        f"or not the published archive: delete it to download it again")
    return path


def read_cifar10(archive: Path) -> ImageSet:
    """The archive's training and test splits as (N, 3, 32, 32) uint8 and labels."""
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and any(name in names for names in MEMBERS.values()):
                    blobs[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: not a readable CIFAR-10 archive ({e})") from None
    images, labels = {}, {}
    for split, names in MEMBERS.items():
        missing = [name for name in names if name not in blobs]
        if missing:
            raise DataError(f"{archive} lacks {', '.join(missing)}")
        data = b"".join(blobs[name] for name in names)
        if len(data) % RECORD:
            raise DataError(f"{archive}: {split} files are not whole {RECORD}-byte records")
        records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
        if records[:, 0].max() >= len(CLASSES):
            raise DataError(f"{archive}: label {records[:, 0].max()} out of range 0..9")
        labels[split] = torch.from_numpy(records[:, 0].astype(np.int64))
        images[split] = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    return ImageSet(images, labels, CLASSES)
