"""The default `vaelab train` reaches the quality README states (slow: about 2 minutes)."""

import json

import pytest

from vaelab.config import Config
from vaelab.training.loop import train


@pytest.mark.slow
def test_default_training_reaches_the_readme_number(tmp_path, data_dir):
    run = train(Config(), out=tmp_path / "default", data_dir=data_dir, progress_bar=False,
                log=lambda *_: None)
    summary = json.loads((run / "summary.json").read_text())
    # README: about 93.6 nats after 16 epochs; allow for thread-count and platform noise.
    assert summary["test_loss"] < 95.0
    assert summary["epochs"] == 16 and "training images" in summary["gmm_sampler"]
