"""Runs of every model family for the explorer's tests, each a few seconds to train, and
the explorer of each, built once (encoding a test set takes a second or two)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import private_cache, train_quietly

FAST = {  # one epoch on 500 images: enough for the explorer to have something to show
    "data.limit": 500, "data.val_size": 500, "model.arch": "mlp", "model.hidden": [128],
    "model.latent_dim": 4, "train.epochs": 1, "train.batch_size": 100, "train.threads": 2,
    "train.sample_grid": 4, "train.precision": "fp32",
}
FAMILIES = {  # beside conftest's trained_run (mlp, 4-D), conditional_run (cvae, 2-D) and
    #            the colour run below (conv, 3-D)
    "hvae-conditional": {"model.arch": "hvae", "model.width": 32, "model.layers": 2,
                         "model.latent_dim": 2, "model.conditional": True},
    "mlp-1d": {"model.latent_dim": 1},
}


@pytest.fixture(scope="session")
def family_runs(tmp_path_factory, data_dir) -> dict[str, Path]:
    return {name: train_quietly({**FAST, **overrides}, tmp_path_factory, name, data_dir)
            for name, overrides in FAMILIES.items()}


@pytest.fixture(scope="session")
def colour_run(tmp_path_factory) -> Path:
    """A conv run on a folder of colour 3x12x10 pictures of two classes (not square, not
    28: the conv model pads them and crops its output back)."""
    root = tmp_path_factory.mktemp("colour")
    rng = np.random.default_rng(0)
    for k, name in enumerate(("reds", "blues")):
        for i in range(24):
            pixels = rng.integers(0, 80, (12, 10, 3), dtype=np.uint8)
            pixels[3:9, 2:8, 2 * k] = 230  # a bright square, red or blue
            (root / "shapes" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / "shapes" / name / f"{i:02d}.png")
    overrides = {**FAST, "data.dataset": str(root / "shapes"), "data.val_size": 8,
                 "train.batch_size": 8, "model.arch": "conv", "model.channels": [8, 16],
                 "model.dense": 32, "model.latent_dim": 3}
    return train_quietly(overrides, tmp_path_factory, "colour", root)


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory):
    """Decoded own images go to a folder of the session's own, not the user's cache."""
    with private_cache(tmp_path_factory):
        yield


@pytest.fixture(scope="session")
def explorers():
    """Explorer.from_run, once per run directory."""
    from vaelab.app.explorer import Explorer

    built = {}

    def explorer(run: Path) -> Explorer:
        if run not in built:
            built[run] = Explorer.from_run(run)
        return built[run]
    return explorer

