import gzip
import hashlib
import io
import struct

import numpy as np
import pytest
import torch

from helpers import idx_bytes, no_network, write_idx
from vaelab.config import DataConfig
from vaelab.data import datasets as data
from vaelab.data import download
from vaelab.data.datasets import DatasetSpec, dynamic_binarize, ensure_files, load_dataset
from vaelab.data.idx import read_idx
from vaelab.errors import DataError


class TestReadIdx:
    @pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
    def test_round_trip(self, tmp_path, images, name):
        out = read_idx(write_idx(tmp_path / name, images))
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, images)

    def test_labels(self, tmp_path):
        labels = np.arange(10, dtype=np.uint8)
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l", labels)), labels)

    @pytest.mark.parametrize("payload, message", [
        (b"", "bad magic number empty"),
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "bad magic number"),  # float data, not ubyte
        (b"\x01\x02\x08\x03" + b"\x00" * 12, "bad magic number"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),  # header cut short
    ])
    def test_bad_headers(self, tmp_path, payload, message):
        path = tmp_path / "bad"
        path.write_bytes(payload)
        with pytest.raises(DataError, match=message) as e:
            read_idx(path)
        assert str(path) in str(e.value)

    def test_truncated_data(self, tmp_path, images):
        path = tmp_path / "t"
        path.write_bytes(idx_bytes(images)[:-100])
        with pytest.raises(DataError, match="truncated IDX file"):
            read_idx(path)

    def test_trailing_bytes(self, tmp_path, images):
        path = tmp_path / "t"
        path.write_bytes(idx_bytes(images) + b"extra")
        with pytest.raises(DataError, match="trailing bytes"):
            read_idx(path)

    def test_absurd_dimensions_fail_without_allocating(self, tmp_path):
        # The header claims 2^32-1 x 65535 x 65535 bytes (~18 exabytes); reading must stop
        # at the end of the real data instead of allocating what the header says.
        path = tmp_path / "huge.gz"
        path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff"
                                       + b"\x00\x00\xff\xff" * 2 + b"\x00" * 1000))
        with pytest.raises(DataError, match="truncated IDX file"):
            read_idx(path)

    def test_zero_dimension_beside_huge_ones(self, tmp_path):
        # Found by the fuzzer: no bytes to read, yet a shape numpy cannot represent.
        path = tmp_path / "z"
        path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 0, 0xB504C417, 0xB5052251))
        with pytest.raises(DataError, match="not a valid array"):
            read_idx(path)

    def test_corrupt_gzip(self, tmp_path, images):
        path = tmp_path / "c.gz"
        blob = bytearray(gzip.compress(idx_bytes(images)))
        blob[len(blob) // 2] ^= 0xFF
        path.write_bytes(bytes(blob))
        with pytest.raises(DataError, match=str(path.name)):
            read_idx(path)


class TestFiles:
    def test_offline_message_names_files_and_folder(self, fake_dataset, monkeypatch):
        root, _ = fake_dataset
        monkeypatch.setattr(download.urllib.request, "urlopen", no_network)
        with pytest.raises(DataError) as e:
            ensure_files("mnist", root)
        message = str(e.value)
        assert "\n" not in message
        for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                     str(root / "mnist"), "network is unreachable", "VAELAB_DATA_DIR"):
            assert name in message
        assert not list((root / "mnist").iterdir()), "a failed download leaves nothing behind"

    def test_download_verifies_and_renames(self, fake_dataset, monkeypatch):
        root, payloads = fake_dataset
        served = []

        def fake_urlopen(url, timeout):
            name = url.rsplit("/", 1)[1]
            served.append(url)
            if "/a/" in url:  # the first mirror serves a corrupted file
                return io.BytesIO(payloads[name][:-1] + b"x")
            return io.BytesIO(payloads[name])

        monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen)
        folder = ensure_files("mnist", root)
        assert sorted(p.name for p in folder.iterdir()) == sorted(payloads)
        assert all(download.md5sum(folder / n) == hashlib.md5(p).hexdigest()
                   for n, p in payloads.items())
        assert any("/a/" in u for u in served) and any("/b/" in u for u in served)

    def test_checksum_mismatch_on_disk(self, fake_dataset):
        root, payloads = fake_dataset
        for name, payload in payloads.items():
            (root / "mnist" / name).write_bytes(payload)
        (root / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(np.zeros((7, 28, 28)))))
        with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: checksum mismatch"):
            data.load_split("mnist", "test", root, download=False)

    def test_raw_files_are_accepted(self, fake_dataset, images):
        root, payloads = fake_dataset
        for name, payload in payloads.items():
            (root / "mnist" / name.removesuffix(".gz")).write_bytes(gzip.decompress(payload))
        x, y = data.load_split("mnist", "test", root, download=False)
        assert x.shape == (7, 1, 28, 28) and x.dtype == torch.uint8
        np.testing.assert_array_equal(x[:, 0].numpy(), images)
        assert y.tolist() == list(range(7))

    def test_wrong_image_size_is_refused(self, fake_dataset):
        root, _ = fake_dataset
        write_idx(root / "mnist" / "t10k-images-idx3-ubyte", np.zeros((7, 32, 32)))
        write_idx(root / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(7))
        with pytest.raises(DataError, match=r"expected images of shape \(N, 28, 28\)"):
            data.load_split("mnist", "test", root, download=False)

    def test_label_count_mismatch_is_refused(self, fake_dataset):
        root, _ = fake_dataset
        write_idx(root / "mnist" / "t10k-images-idx3-ubyte", np.zeros((7, 28, 28)))
        write_idx(root / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(6))
        with pytest.raises(DataError, match="expected 7 labels"):
            data.load_split("mnist", "test", root, download=False)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "kmnist"])
def test_every_dataset_loads_from_its_folder(tmp_path, monkeypatch, images, dataset):
    """Each dataset reads `<data-dir>/<its folder>/` and keeps its class names."""
    real = data.DATASETS[dataset]
    payloads = {
        "train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(np.tile(images, (3, 1, 1)))),
        "train-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.arange(21) % 10)),
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.arange(7) % 10)),
    }
    folder = tmp_path / real.folder
    folder.mkdir()
    for name, payload in payloads.items():
        (folder / name).write_bytes(payload)
    monkeypatch.setitem(data.DATASETS, dataset, DatasetSpec(
        folder=real.folder, mirrors=real.mirrors, classes=real.classes,
        md5={n: hashlib.md5(p).hexdigest() for n, p in payloads.items()}))
    d = load_dataset(DataConfig(dataset=dataset, val_size=5), tmp_path, download=False)
    assert (len(d.train), len(d.val), len(d.test)) == (16, 5, 7)
    assert d.classes == real.classes and len(d.classes) == 10


class TestMnist:
    def test_splits(self, data_dir):
        d = load_dataset(DataConfig(), data_dir)
        assert (len(d.train), len(d.val), len(d.test)) == (55_000, 5_000, 10_000)
        assert d.train.images.shape == (55_000, 1, 28, 28)
        assert d.train.images.dtype == torch.uint8
        assert d.test.labels.bincount().tolist()[:3] == [980, 1135, 1032]  # known counts
        # Evaluation sets are binarized once: only 0 and 255, identically every time.
        assert set(d.test.images.unique().tolist()) == {0, 255}
        again = load_dataset(DataConfig(), data_dir)
        assert torch.equal(d.test.images, again.test.images)
        assert torch.equal(d.val.images, again.val.images)

    def test_val_split_is_disjoint_and_limit_applies(self, data_dir):
        d = load_dataset(DataConfig(mode="grayscale", val_size=1000, limit=3000), data_dir)
        assert (len(d.train), len(d.val)) == (3000, 1000)
        train_rows = {bytes(r) for r in d.train.images.flatten(1).numpy()}
        assert not any(bytes(r) in train_rows for r in d.val.images.flatten(1).numpy())
        assert len(d.test.images.unique()) > 2  # grayscale keeps 256 levels

    def test_dynamic_binarization_draws_afresh(self, data_dir):
        d = load_dataset(DataConfig(limit=256), data_dir)
        g = torch.Generator().manual_seed(0)
        images = d.train.images
        a = dynamic_binarize(images, torch.rand(images.shape, generator=g))
        b = dynamic_binarize(images, torch.rand(images.shape, generator=g))
        assert set(a.unique().tolist()) == {0.0, 1.0}
        assert not torch.equal(a, b)
        # Each pixel is on with probability intensity/255: the means agree.
        probs = d.train.images.float() / 255
        assert abs(a.mean().item() - probs.mean().item()) < 0.01
        assert torch.equal(a[images == 0], torch.zeros_like(a[images == 0]))
        assert torch.equal(a[images == 255], torch.ones_like(a[images == 255]))

    def test_val_size_too_large(self, data_dir):
        with pytest.raises(DataError, match="leaves no training images"):
            load_dataset(DataConfig(val_size=60_000), data_dir)
