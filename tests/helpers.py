"""Helpers that several test files share: IDX bytes, run-directory readers, the one-line
error check, and the fault report."""

from __future__ import annotations

import contextlib
import gzip
import importlib
import json
import os
import signal
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vaelab.cli import main
from vaelab.config import Config

train_module = importlib.import_module("vaelab.training.loop")  # the module, not vaelab.train


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path, array, gz=None):
    payload = idx_bytes(array)
    path.write_bytes(gzip.compress(payload) if (gz if gz is not None else
                                                path.suffix == ".gz") else payload)
    return path


def no_network(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


def report(fault: str, trials: int, passed: int, **details) -> None:
    """Add a fault class's tallies to $VAELAB_FAULT_REPORT (JSON lines) when it is set."""
    path = os.environ.get("VAELAB_FAULT_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"fault": fault, "trials": trials, "passed": passed,
                                **details}) + "\n")


def quiet(*_):
    pass


def weights(run, which="last"):
    return load_file(run / "checkpoints" / which / "model.safetensors")


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def interrupt_at(monkeypatch, batch_calls: int):
    """Send SIGTERM to ourselves while the loop draws its `batch_calls`-th batch."""
    real = train_module.draw_batch
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        count["n"] += 1
        if count["n"] == batch_calls:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "draw_batch", wrapped)


def assert_one_line_error(capsys, argv, *fragments):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    return err


def train_quietly(overrides: dict, factory, name: str, data_dir: Path) -> Path:
    """Train a run of the default config with `overrides` in a fresh temporary folder."""
    from vaelab.training.loop import train

    run = factory.mktemp("runs") / name
    train(Config().replace(overrides), out=run, data_dir=data_dir, progress_bar=False,
          log=lambda *_: None)
    return run


@contextlib.contextmanager
def private_cache(factory):
    """VAELAB_CACHE_DIR on a new temporary folder while the block runs: decoded images and
    classifiers that tests make stay out of the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAELAB_CACHE_DIR", str(factory.mktemp("cache")))
        yield
