"""Export a trained model as two standalone parts, each a folder with `model.safetensors`
and `config.json`: the encoder q(z|x) and the decoder p(x|z). No optimizer state."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import Config
from ..device import pick_device
from ..errors import RunError
from ..models.vae import Decoder, GaussianEncoder, build_model
from .checkpoint import CONFIG, WEIGHTS, load_weights, save_weights, write_json
from .rundir import load_run

PARTS = ("encoder", "decoder")


def export(run: str | Path, out: str | Path, checkpoint: str = "best") -> Path:
    """Write `out/encoder/` and `out/decoder/` from a run's checkpoint; return `out`."""
    model, config = load_run(run, checkpoint)
    if not all(hasattr(model, part) for part in PARTS):
        raise RunError(f"{run} is a {config.model.arch} model, whose encoder and decoder share "
                       f"the top-down path: it cannot be split into parts; load the whole "
                       f"model with vaelab.load({str(run)!r})")
    out = Path(out)
    for part in PARTS:
        folder = out / part
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"cannot create {folder}: {e.strerror}") from None
        save_weights(folder / WEIGHTS, getattr(model, part))
        write_json(folder / CONFIG, {"part": part, **config.to_dict()})
    return out


def _load_part(path: str | Path, part: str, device) -> torch.nn.Module:
    path = Path(path)
    try:
        meta = json.loads((path / CONFIG).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path / CONFIG}: not an exported vaelab {part} ({e})") from None
    if meta.pop("part", None) != part:
        raise RunError(f"{path} is not an exported vaelab {part}")
    module = getattr(build_model(Config.from_dict(meta).model), part)
    load_weights(path, module, WEIGHTS)
    return module.to(pick_device(device)).eval()


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> GaussianEncoder:
    """An exported encoder: `encode(x)` maps (N, 1, 28, 28) in [0, 1] to (mu, logvar)."""
    return _load_part(path, "encoder", device)


def load_decoder(path: str | Path, device: str | torch.device = "cpu") -> Decoder:
    """An exported decoder: `decode(z)` gives logits or means; `images(z)` gives [0, 1]."""
    return _load_part(path, "decoder", device)
