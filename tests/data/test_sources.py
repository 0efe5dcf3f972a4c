"""A user's own images: folders (labelled, unlabelled, split), NumPy arrays, the CIFAR-10
binary archive (synthetic, in the official format) and the decoded cache."""

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from vaelab.data import cache
from vaelab.data.arrays import read_array
from vaelab.data.cifar import CLASSES, ensure_archive, read_cifar10
from vaelab.data.folders import read_folder
from vaelab.data.imageset import UNLABELLED
from vaelab.errors import DataError

RNG = np.random.default_rng(0)


def save(path, pixels, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


def gray(h=20, w=20):
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def colour(h=20, w=20):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


class TestFolders:
    def test_class_folders_are_the_labels_in_name_order(self, tmp_path):
        written = {(c, i): save(tmp_path / c / f"{i}.png", gray())
                   for c in ("zebra", "apple") for i in range(3)}
        found = read_folder(tmp_path)
        assert found.classes == ("apple", "zebra") and set(found.images) == {"train"}
        assert found.images["train"].shape == (6, 1, 20, 20)
        assert found.labels["train"].tolist() == [0, 0, 0, 1, 1, 1]
        assert torch.equal(found.images["train"][4, 0],  # zebra/1.png, bit for bit
                           torch.from_numpy(written[("zebra", 1)]))

    def test_flat_folder_is_unlabelled_and_a_split_is_kept(self, tmp_path):
        for i in range(4):
            save(tmp_path / "flat" / f"{i}.png", gray())
        flat = read_folder(tmp_path / "flat")
        assert not flat.labelled and (flat.labels["train"] == UNLABELLED).all()
        for split, n in (("train", 5), ("test", 2)):
            for c in ("a", "b"):
                for i in range(n):
                    save(tmp_path / "split" / split / c / f"{i}.png", gray())
        split = read_folder(tmp_path / "split")
        assert {k: len(v) for k, v in split.images.items()} == {"train": 10, "test": 4}
        assert split.labels["test"].tolist() == [0, 0, 1, 1]

    def test_channels_follow_the_images(self, tmp_path):
        save(tmp_path / "rgb" / "a.jpg", colour())
        save(tmp_path / "rgb" / "b.png", gray())  # grayscale beside colour: 3 channels
        both = read_folder(tmp_path / "rgb")
        assert both.shape == (3, 20, 20)
        assert torch.equal(both.images["train"][1, 0], both.images["train"][1, 2])
        pixels = gray()
        save(tmp_path / "fake" / "a.png", np.stack([pixels] * 3, axis=2))  # RGB, but gray
        assert read_folder(tmp_path / "fake").shape == (1, 20, 20)
        assert torch.equal(read_folder(tmp_path / "fake").images["train"][0, 0],
                           torch.from_numpy(pixels))
        assert read_folder(tmp_path / "rgb", channels=1).shape == (1, 20, 20)
        assert read_folder(tmp_path / "fake", channels=3).shape == (3, 20, 20)

    def test_image_size_resizes_keeping_the_aspect(self, tmp_path):
        wide = np.zeros((20, 40), np.uint8)
        wide[:, 10:30] = 255  # a white square in the middle of a wide image
        save(tmp_path / "m" / "wide.png", wide)
        save(tmp_path / "m" / "small.png", gray(8, 8))
        with pytest.raises(DataError, match="differ in size.*--image-size"):
            read_folder(tmp_path / "m")
        found = read_folder(tmp_path / "m", image_size=16)
        assert found.shape == (1, 16, 16)
        assert found.images["train"][1].float().mean() > 240  # the centre crop is the square

    @pytest.mark.parametrize("layout, message", [
        ("empty", "no image files"),
        ("one class", "single class folder"),
        ("mixed", "both image files and class folders"),
        ("corrupt", "broken.png: not a readable image"),
        ("test only", "no train/ folder"),
        ("missing", "no such folder"),
    ])
    def test_bad_folders_are_one_clear_error(self, tmp_path, layout, message):
        root = tmp_path / "data"
        root.mkdir()
        if layout == "one class":
            save(root / "cats" / "1.png", gray())
        elif layout == "mixed":
            save(root / "cats" / "1.png", gray())
            save(root / "dogs" / "1.png", gray())
            save(root / "loose.png", gray())
        elif layout == "corrupt":
            save(root / "ok.png", gray())
            (root / "broken.png").write_bytes(b"\x89PNG\r\n garbage")
        elif layout == "test only":
            save(root / "test" / "1.png", gray())
        elif layout == "missing":
            root = tmp_path / "nope"
        with pytest.raises(DataError, match=message) as e:
            read_folder(root)
        assert "\n" not in str(e.value)


class TestArrays:
    def test_npz_with_a_split_and_class_names(self, tmp_path):
        x, x_test = colour(32, 32)[None].repeat(5, 0), gray(32, 32)[None, ..., None]
        path = tmp_path / "set.npz"
        np.savez(path, x_train=x, y_train=np.array([0, 1, 2, 1, 0]), x_test=x_test,
                 y_test=np.array([2]), classes=np.array(["cat", "dog", "owl"]))
        found = read_array(path)
        assert found.images["train"].shape == (5, 3, 32, 32)
        assert torch.equal(found.images["train"][0].permute(1, 2, 0), torch.from_numpy(x[0]))
        assert found.images["test"].shape == (1, 1, 32, 32)  # as given; channels=3 unifies
        assert read_array(path, channels=3).images["test"].shape == (1, 3, 32, 32)
        assert found.classes == ("cat", "dog", "owl")
        assert found.labels["test"].tolist() == [2]

    def test_npy_is_unlabelled_and_can_be_resized(self, tmp_path):
        path = tmp_path / "x.npy"
        np.save(path, RNG.integers(0, 256, (7, 30, 30), dtype=np.uint8))
        found = read_array(path, image_size=16)
        assert found.shape == (1, 16, 16) and not found.labelled

    @pytest.mark.parametrize("arrays, message", [
        ({"x": np.zeros((4, 8, 8), np.float32)}, "must be uint8"),
        ({"x": np.zeros((8, 8), np.uint8)}, "expected images of shape"),
        ({"x": np.zeros((4, 8, 8, 2), np.uint8)}, "expected images of shape"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(3, int)}, "expected 4 labels"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.full(4, 0.5)}, "must be integers"),
        ({"pictures": np.zeros((4, 8, 8), np.uint8)}, "no images in it"),
        ({"x": np.array([{"a": 1}] * 4, dtype=object)}, "not a readable NumPy file"),
    ])
    def test_bad_arrays_are_one_clear_error(self, tmp_path, arrays, message):
        path = tmp_path / "bad.npz"
        np.savez(path, **arrays)
        with pytest.raises(DataError, match=message):
            read_array(path)


def cifar_archive(path, per_batch=3):
    """A tar.gz in the official binary layout: label byte, then R, G, B planes."""
    truth = {"train": [], "test": []}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            labels = RNG.integers(0, 10, per_batch, dtype=np.uint8)
            images = RNG.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
            blob = np.concatenate([labels[:, None], images.reshape(per_batch, -1)], 1).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            truth["test" if name.startswith("test") else "train"].append((images, labels))
    return {k: (np.concatenate([i for i, _ in v]), np.concatenate([y for _, y in v]))
            for k, v in truth.items()}


def test_cifar10_binary_records_decode_to_the_right_planes(tmp_path):
    truth = cifar_archive(tmp_path / "c.tar.gz")
    found = read_cifar10(tmp_path / "c.tar.gz")
    assert found.classes == CLASSES and found.shape == (3, 32, 32)
    for split, (images, labels) in truth.items():
        assert torch.equal(found.images[split], torch.from_numpy(images))
        assert found.labels[split].tolist() == labels.tolist()
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(DataError, match="checksum mismatch"):
        ensure_archive(tmp_path)


def test_decoded_cache_reads_once_and_notices_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("VAELAB_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "imgs"
    for i in range(3):
        save(source / "a" / f"{i}.png", gray())
        save(source / "b" / f"{i}.png", gray())
    reads = []

    def read():
        reads.append(1)
        return read_folder(source)

    first = cache.cached(source, "s0-c0", read)
    second = cache.cached(source, "s0-c0", read)
    assert len(reads) == 1 and second.classes == first.classes
    assert torch.equal(second.images["train"], first.images["train"])
    cache.cached(source, "s16-c0", read)  # other options: another file
    assert len(reads) == 2
    save(source / "b" / "3.png", gray())  # the source changed: read again
    assert len(cache.cached(source, "s0-c0", read).images["train"]) == 7 and len(reads) == 3
    path = cache.cache_path(source, "s0-c0")
    path.write_bytes(path.read_bytes()[:100])  # a torn file is never trusted
    assert len(cache.cached(source, "s0-c0", read).images["train"]) == 7 and len(reads) == 4
