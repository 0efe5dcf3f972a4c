"""Shared fixtures. MNIST comes from $VAELAB_DATA_DIR (CI: ../shared/data); no test downloads."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import idx_bytes, train_quietly
from vaelab.config import Config
from vaelab.data import datasets
from vaelab.data.datasets import DATASETS, SPLIT_FILES, DatasetSpec

TINY = {  # a model and data subset small enough that a run takes a few seconds
    "data.limit": 2000, "data.val_size": 500,
    "model.arch": "mlp", "model.hidden": [128], "model.latent_dim": 4, "objective.beta": 1.0,
    "train.epochs": 2, "train.batch_size": 100, "train.threads": 2, "train.sample_grid": 4,
}


def pytest_configure(config):
    # CI sets a relative VAELAB_DATA_DIR (../shared/data); tests that change directory must
    # still find it, so make it absolute once, for this process and the commands it starts.
    env = os.environ.get("VAELAB_DATA_DIR")
    if env:
        os.environ["VAELAB_DATA_DIR"] = str(Path(env).resolve())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding mnist/; tests that need real MNIST skip without it."""
    env = os.environ.get("VAELAB_DATA_DIR")
    if not env:
        pytest.skip("VAELAB_DATA_DIR is not set: point it at a folder holding mnist/")
    folder = Path(env)
    names = [f"{stem}.gz" for stems in SPLIT_FILES.values() for stem in stems]
    missing = [n for n in names if not (folder / DATASETS["mnist"].folder / n).exists()]
    if missing:
        pytest.fail(f"VAELAB_DATA_DIR={env} lacks mnist/{', '.join(missing)}")
    return folder

CONDITIONAL = {  # a small cvae with a 2-D latent: about 10 s on 2 CPU cores
    "data.limit": 5000, "data.val_size": 500, "model.arch": "cvae", "model.channels": [16, 32],
    "model.latent_dim": 2, "train.epochs": 6, "train.batch_size": 100, "train.threads": 1,
    "train.sample_grid": 4, "train.precision": "fp32",
}


@pytest.fixture
def tiny_config() -> Config:
    return Config().replace(TINY)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """One tiny trained run shared by the tests that only read a run directory."""
    return train_quietly(TINY, tmp_path_factory, "tiny", data_dir)


@pytest.fixture(scope="session")
def trained_run_2d(tmp_path_factory, data_dir) -> Path:
    """A tiny trained run with a 2-D latent space (the manifold needs one)."""
    return train_quietly({**TINY, "model.latent_dim": 2}, tmp_path_factory, "tiny2d",
                         data_dir)


@pytest.fixture(scope="session")
def conditional_run(tmp_path_factory, data_dir) -> Path:
    """A tiny trained conditional run (cli/test_conditional.py measures what it draws)."""
    return train_quietly(CONDITIONAL, tmp_path_factory, "cvae", data_dir)


@pytest.fixture(scope="session")
def quick_classifier(data_dir):
    """vaelab's classifier trained briefly (5,000 images, two epochs): about 96% test
    accuracy in 20 s. Returns (model, test accuracy)."""
    from vaelab.evaluation.classifier import train_classifier

    return train_classifier("mnist", data_dir, epochs=2, limit=5000, log=lambda *_: None)


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)


@pytest.fixture
def fake_dataset(tmp_path, monkeypatch, images):
    """A dataset 'mnist' whose published checksums are those of small files we write."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    payloads = {
        "train-images-idx3-ubyte.gz": gzip.compress(idx_bytes(np.tile(images, (3, 1, 1)))),
        "train-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.arange(21) % 10)),
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.arange(7) % 10)),
    }
    spec = DatasetSpec(folder="mnist", mirrors=("http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"),
                       md5={n: hashlib.md5(p).hexdigest() for n, p in payloads.items()},
                       classes=tuple("0123456789"))
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec)
    return tmp_path, payloads
