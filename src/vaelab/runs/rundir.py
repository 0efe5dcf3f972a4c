"""The run directory: the layout every command after `train` reads, and its writer lock."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .. import samplers
from ..config import Config
from ..device import pick_device
from ..errors import RunError
from ..models.generative import LatentVariableModel
from .checkpoint import load_checkpoint, resolve

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
SAMPLES = "samples"
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"
LOCK = ".lock"
CHECKPOINT_NAMES = ("best", "last")


def checkpoint_dir(run: Path, which: str) -> Path:
    return Path(run) / CHECKPOINTS / which


def require_run(run: str | Path) -> Path:
    """Check that `run` is a vaelab run directory (it has its config.json, written before
    anything else; its checkpoints may not exist yet); return it as a Path."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"run directory not found: {run}")
    if not (run / CONFIG).is_file():
        raise RunError(f"{run} is not a vaelab run directory (no {CONFIG})")
    return run


def load(run: str | Path, checkpoint: str = "best",
         device: str | torch.device = "cpu") -> LatentVariableModel:
    """Load a trained model from a run directory, in eval mode.

    `checkpoint` is "best" (lowest validation loss) or "last". The model has `encode(x)`,
    `decode(z)`, `sample(n)` and `reconstruct(x)` for images (N, 1, 28, 28) in [0, 1];
    `sample` draws from the run's Gaussian-mixture sampler unless given sampler="prior".
    """
    return load_run(run, checkpoint, device)[0]


def load_run(run: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu",
             data_dir: str | Path | None = None, read_only: bool = False,
             ) -> tuple[LatentVariableModel, Config]:
    """The model of a run's checkpoint and the run's config. Its `gmm` sampler is read from
    the checkpoint, or fitted on first use to training images from `data_dir` and saved
    there; with `read_only` it is kept in memory only, and nothing is written to the run."""
    if checkpoint not in CHECKPOINT_NAMES:
        raise RunError(f"checkpoint must be one of {', '.join(CHECKPOINT_NAMES)}, "
                       f"got {checkpoint!r}")
    run = require_run(run)
    folder = checkpoint_dir(run, checkpoint)
    found = resolve(folder)
    if found is None:
        raise RunError(f"{run} has no '{checkpoint}' checkpoint yet (is it still training "
                       f"its first epoch?)")
    model, cfg = load_checkpoint(found, pick_device(device))
    return samplers.attach(model, found, cfg, data_dir, save=not read_only), cfg


class RunLock:
    """An exclusive lock on a run directory, held while `vaelab train` writes to it.

    It is an OS advisory lock (flock), so the kernel releases it when the process dies:
    a crashed run never leaves the directory locked.
    """

    def __init__(self, run: Path):
        self.path = Path(run) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(self.fd)
        except OSError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            self.fd = None
            raise RunError(f"{self.path.parent} is in use by another vaelab train "
                           f"(pid {holder}); wait for it or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the lock
            self.fd = None


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
