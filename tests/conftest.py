"""Shared fixtures. MNIST comes from $VAELAB_DATA_DIR (CI: ../shared/data); no test downloads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vaelab.config import Config
from vaelab.data.datasets import DATASETS, SPLIT_FILES

TINY = {  # a model and data subset small enough that a run takes a few seconds
    "data.limit": 2000, "data.val_size": 500,
    "model.arch": "mlp", "model.hidden": [128], "model.latent_dim": 4,
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


@pytest.fixture
def tiny_config() -> Config:
    return Config().replace(TINY)


def train_quietly(overrides: dict, factory, name: str, data_dir: Path) -> Path:
    """Train a run of the default config with `overrides` in a fresh temporary folder."""
    from vaelab.training.loop import train

    run = factory.mktemp("runs") / name
    train(Config().replace(overrides), out=run, data_dir=data_dir, progress_bar=False,
          log=lambda *_: None)
    return run


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
def quick_classifier(data_dir):
    """vaelab's classifier trained briefly (5,000 images, two epochs): about 96% test
    accuracy in 20 s. Returns (model, test accuracy)."""
    from vaelab.evaluation.classifier import train_classifier

    return train_classifier("mnist", data_dir, epochs=2, limit=5000, log=lambda *_: None)
