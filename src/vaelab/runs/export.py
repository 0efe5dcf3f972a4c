"""Export a trained model as two standalone parts: the encoder q(z|x) and the decoder p(x|z).
No optimizer state. `safetensors`: each part a folder with `model.safetensors` and
`config.json`, for one-layer models. `onnx` (onnx.py): `encoder.onnx` and `decoder.onnx`,
for every model, beside the safetensors folders where the model has them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import Config
from ..device import pick_device
from ..errors import ConfigError, RunError
from ..models.vae import Decoder, GaussianEncoder, build_model
from .checkpoint import CONFIG, WEIGHTS, load_weights, save_weights, write_json
from .onnx import export_onnx, require_onnx
from .rundir import load_run

PARTS = ("encoder", "decoder")
FORMATS = ("safetensors", "onnx")


def export(run: str | Path, out: str | Path, checkpoint: str = "best",
           format: str = "safetensors") -> list[Path]:
    """Export a run's checkpoint into `out`; return what was written, in order.

    `format="safetensors"`: the folders `out/encoder/` and `out/decoder/` (one-layer models).
    `format="onnx"`: `out/encoder.onnx` and `out/decoder.onnx` (every model; see onnx.py),
    after the safetensors folders for a model that has them."""
    if format not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "onnx":
        require_onnx()  # before the model loads
    model, config = load_run(run, checkpoint)
    splittable = all(hasattr(model, part) for part in PARTS)
    if format == "safetensors" and not splittable:
        raise RunError(f"{run} is a {config.model.arch} model, whose encoder and decoder share "
                       f"the top-down path: it cannot be split into safetensors parts; export "
                       f"it as ONNX (--format onnx), or load the whole model with "
                       f"vaelab.load({str(run)!r})")
    written = _save_parts(model, config, Path(out)) if splittable else []
    if format == "onnx":
        written += export_onnx(model, out)
    return written


def _save_parts(model: torch.nn.Module, config: Config, out: Path) -> list[Path]:
    """`out/encoder/` and `out/decoder/`, each weights and the config that rebuilds it."""
    written = []
    for part in PARTS:
        folder = out / part
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"cannot create {folder}: {e.strerror}") from None
        save_weights(folder / WEIGHTS, getattr(model, part))
        write_json(folder / CONFIG, {"part": part, **config.to_dict()})
        written.append(folder)
    return written


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
