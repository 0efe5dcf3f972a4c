"""`--resume`: where a run directory stands, and the repair a kill may leave to do.

Each epoch ends in this order: its checkpoints (`best` if it improved, then `last`, each
written atomically), then its records (sample grid, TensorBoard, then the metrics.jsonl line),
then its printed line. So a kill leaves one of three states, and resuming handles each:

- no checkpoint yet (killed in the first epoch): the run starts again from its config.json;
- the checkpoint's epoch has no metrics line (killed after the checkpoint): its records are
  written again from the epoch record saved in trainer.pt, before training goes on;
- all recorded: training continues; a run that already finished is refused and left as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..errors import ConfigError, RunError
from ..runs import rundir
from ..runs.checkpoint import load_trainer_state, resolve
from .distributed import World
from .records import truncate_metrics
from .state import Generators, Progress, WeightAverage, unpack


def has_checkpoint_to_resume(run: Path, cfg: Config, log: Callable[[str], None]) -> bool:
    """Whether `run` continues from its `checkpoints/last`. Without one it starts again from
    its config.json (said in one line). A run that has trained and summarised all of
    `cfg.train.epochs` raises ConfigError before anything in its directory is touched."""
    last = resolve(rundir.checkpoint_dir(run, "last"))
    if last is None:
        log(f"vaelab: {run} has no checkpoint yet; starting it again from its {rundir.CONFIG}")
        return False
    state = load_trainer_state(last)
    done = state.get("epoch") if isinstance(state, dict) else None
    if isinstance(done, int) and not state.get("batch") and done >= cfg.train.epochs \
            and _summary_epochs(run) == done:
        raise ConfigError(f"{run} already finished its {done} epochs; add --epochs N to "
                          f"train longer")
    return True


def _summary_epochs(run: Path) -> int | None:
    """The epochs summary.json reports (written last, when a session ends), if readable."""
    try:
        return json.loads((run / rundir.SUMMARY).read_text()).get("epochs")
    except (OSError, ValueError, AttributeError):
        return None


def restore(run: Path, world: World, ema: WeightAverage, optimizer: torch.optim.Optimizer,
            generators: Generators, device: torch.device
            ) -> tuple[Progress, dict[str, Any] | None]:
    """Load `checkpoints/last` into the model, its weight average, the optimizer and the
    generators; return the progress and, on rank 0, the checkpoint's epoch record if that
    epoch's records are to be written again (see `unrecorded_epoch`)."""
    last = resolve(rundir.checkpoint_dir(run, "last"))
    if last is None:
        raise RunError(f"{run} has no checkpoint to resume from")
    ema.load(last)
    state = load_trainer_state(last)
    progress = unpack(state, optimizer, generators, device)
    ema.restore(state)
    if progress.batch and not world.main:
        progress.sums.zero_()  # the saved sums are global; rank 0 carries them on
    return progress, unrecorded_epoch(run, state, progress) if world.main else None


def unrecorded_epoch(run: Path, state: dict[str, Any], progress: Progress
                     ) -> dict[str, Any] | None:
    """Make metrics.jsonl agree with the checkpoint: drop the lines of later epochs, and
    return the checkpoint's epoch record when that epoch's line is missing (killed after its
    checkpoint, before its records), so that its records are written again."""
    recorded = truncate_metrics(run / rundir.METRICS, progress.epoch)
    record = state.get("record")
    if recorded < progress.epoch and not progress.batch and isinstance(record, dict) \
            and record.get("epoch") == progress.epoch:
        return record
    return None
