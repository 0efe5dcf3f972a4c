"""The default `vaelab train` reaches the quality README states (slow: about 3.5 minutes)."""

import json

import pytest

from vaelab.config import Config
from vaelab.training.loop import train


@pytest.mark.slow
def test_default_training_reaches_the_readme_number(tmp_path, data_dir):
    run = train(Config(), out=tmp_path / "default", data_dir=data_dir, progress_bar=False,
                log=lambda *_: None)
    summary = json.loads((run / "summary.json").read_text())
    # README: about 97.7 nats after 10 epochs; allow for thread-count and platform noise.
    assert summary["test_loss"] < 99.0
