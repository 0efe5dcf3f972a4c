"""Checkpoints: a folder of `model.safetensors` (weights), `config.json` (enough to rebuild
the model) and `trainer.pt` (optimizer, RNG states, progress; tensors and plain data only,
read back with `torch.load(weights_only=True)`). A run with a weight average (train.ema)
saves the average as `model.safetensors` and the trained weights as `online.safetensors`.

A checkpoint is written to a hidden temporary folder and swapped in with two renames:
`last` -> `.last.old`, `.last.tmp` -> `last`. At every moment either `last` or `.last.old`
is complete, and `resolve` finds whichever it is, so a crash never loses the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import Config
from ..errors import ConfigError, RunError
from ..models.generative import LatentVariableModel
from ..models.vae import build_model

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINER = "trainer.pt"
ONLINE = "online.safetensors"
FORMAT = "vaelab-checkpoint-1"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the rename still holds
        pass
    finally:
        os.close(fd)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to `path` atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    _fsync(tmp)
    os.replace(tmp, path)


def save_weights(path: Path, module: torch.nn.Module) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(tensors, path, metadata={"format": FORMAT})


def save_checkpoint(folder: Path, model: torch.nn.Module, config: Config,
                    trainer_state: dict[str, Any] | None = None,
                    online: torch.nn.Module | None = None) -> None:
    """Write a complete checkpoint to `folder`, replacing the previous one atomically.

    A failed write (disk full, read-only or vanished directory) raises a RunError that says
    so; the previous checkpoint is left as it was."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    try:
        _write_and_swap(folder, tmp, model, config, trainer_state, online)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = resolve(folder)
        kept = f"the previous checkpoint {previous} is intact" if previous else \
            "no earlier checkpoint exists"
        raise RunError(f"cannot write checkpoint {folder}: {e.strerror or e} "
                       f"({e.filename or folder}); {kept}") from None


def _write_and_swap(folder: Path, tmp: Path, model: torch.nn.Module, config: Config,
                    trainer_state: dict[str, Any] | None,
                    online: torch.nn.Module | None) -> None:
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    # `checkpoints/` may be new, but not the folder above it: a run directory that vanished
    # is an error to report, not a folder to make again.
    folder.parent.mkdir(exist_ok=True)
    tmp.mkdir()
    save_weights(tmp / WEIGHTS, model)
    if online is not None:
        save_weights(tmp / ONLINE, online)
    write_json(tmp / CONFIG, config.to_dict())
    if trainer_state is not None:
        torch.save(trainer_state, tmp / TRAINER)
    for path in tmp.iterdir():
        _fsync(path)
    _fsync(tmp)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(folder, old)
    os.rename(tmp, folder)
    _fsync(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def resolve(folder: Path) -> Path | None:
    """The complete checkpoint at `folder`, or the previous one if a swap was interrupted."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(f".{folder.name}.old")):
        if (candidate / WEIGHTS).is_file() and (candidate / CONFIG).is_file():
            return candidate
    return None


def read_config(folder: Path) -> Config:
    try:
        return Config.from_dict(json.loads((folder / CONFIG).read_text()))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, ConfigError) as e:
        raise RunError(f"{folder / CONFIG}: unreadable checkpoint config ({e})") from None


def load_weights(folder: Path, module: torch.nn.Module, name: str = WEIGHTS) -> None:
    """Load safetensors weights into `module`, refusing missing, extra or misshapen tensors."""
    path = Path(folder) / name
    try:
        tensors = load_file(path)
    except (OSError, SafetensorError, ValueError) as e:
        raise RunError(f"{path}: unreadable weights file ({e})") from None
    expected = module.state_dict()
    problems = sorted(set(expected) ^ set(tensors))
    problems += [k for k in expected.keys() & tensors.keys()
                 if expected[k].shape != tensors[k].shape]
    if problems:
        raise RunError(f"{path}: weights do not match the model in its config.json "
                       f"(a checkpoint of another architecture?): {', '.join(problems[:5])}")
    module.load_state_dict(tensors)


def load_trainer_state(folder: Path) -> dict[str, Any]:
    """Read `trainer.pt` without unpickling arbitrary objects (weights_only=True)."""
    path = Path(folder) / TRAINER
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path}: missing trainer state, cannot resume") from None
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise RunError(f"{path}: unreadable or unsafe trainer state "
                       f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                       ) from None


def load_checkpoint(folder: Path, device: str | torch.device = "cpu",
                    ) -> tuple[LatentVariableModel, Config]:
    """Rebuild the model from the checkpoint's config.json and load its weights."""
    found = resolve(folder)
    if found is None:
        raise RunError(f"no checkpoint in {folder}")
    config = read_config(found)
    model = build_model(config.model)
    load_weights(found, model)
    return model.to(device).eval(), config
