"""ONNX export: a model's encoder and decoder as two graphs that run without PyTorch or vaelab
(onnxruntime, or any ONNX runtime), for every family, the hierarchical VAE too.

    encoder.onnx   x (batch, C, H, W) in [0, 1]  [, label (batch, Y)]  ->  mu, logvar (batch, D)
    decoder.onnx   z (batch, D)                  [, label (batch, Y)]  ->  image (batch, C, H, W)

The encoder graph is `model.encode`; the decoder graph is `model.images`, the decoder followed
by its likelihood's mean, so `image` is in [0, 1] whatever the likelihood (Bernoulli logits,
Gaussian means, a logistic mixture's parameters). A hierarchical VAE's two graphs each hold a
copy of the shared top-down path and speak its whitened code, as `encode` and `decode` do. A
conditional model's graphs take `label`: one-hot rows (or class weights), float32.

Exporter: torch.export with `torch.onnx.export(..., dynamo=True)`, the default since torch
2.9. The TorchScript exporter (dynamo=False) warns that it is deprecated, and its tracer does
not export these models (measured on torch 2.13): it reads a tensor's size as a constant
(hvae's `len(x)` fixed the batch, hence `x.shape[0]` there) or as a traced value (the
logistic mixture's layout lookup on `params.shape[1]` then fails). We call
`torch.export.export` ourselves and give torch.onnx the program it returns: given a module,
torch.onnx retries a failed export with the batch size fixed to the example's, which would
write a graph that rejects every other batch size without a word.

Opset 18: the operator set torch.onnx's op library is written for (no version conversion);
it has LayerNormalization (opset 17), and onnxruntime has run it since 1.14.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, RunError
from ..models.generative import LatentVariableModel

OPSET = 18
FILES = {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}
EXAMPLE_BATCH = 2  # torch.export treats a size of 0 or 1 as a constant: trace with 2
MIN_TORCH = "2.6"  # torch.onnx.export of an ExportedProgram; tested on torch 2.13
PACKAGES = ("onnx", "onnxscript")  # what torch.onnx's exporter needs; onnxruntime runs it
QUIET_LOGGERS = ("torch.onnx", "onnxscript")  # their progress notes are not the user's concern


def require_onnx() -> None:
    """Raise a ConfigError naming the extra to install when the exporter's packages are
    missing; call it before any slow work."""
    missing = []
    for name in PACKAGES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if torch.__version__ < MIN_TORCH:
        raise ConfigError(f"ONNX export needs torch {MIN_TORCH} or newer (torch.export with "
                          f"dynamic shapes); this is torch {torch.__version__}")
    if missing:
        raise ConfigError(f"ONNX export needs the {' and '.join(missing)} "
                          f"package{'s' if len(missing) > 1 else ''}: "
                          f'pip install "vaelab[onnx]"')


class EncoderGraph(nn.Module):
    """x (N, C, H, W) in [0, 1] [, label (N, Y)] -> mu, logvar (N, D): `model.encode`."""

    def __init__(self, model: LatentVariableModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor,
                label: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x, label)


class DecoderGraph(nn.Module):
    """z (N, D) [, label (N, Y)] -> image (N, C, H, W) in [0, 1]: `model.images`."""

    def __init__(self, model: LatentVariableModel):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.images(z, label)


def graphs(model: LatentVariableModel) -> dict[str, tuple[nn.Module, list[str], list[str]]]:
    """{"encoder" | "decoder": (module, input names, output names)} of a model."""
    label = ["label"] if model.conditional else []
    return {"encoder": (EncoderGraph(model), ["x", *label], ["mu", "logvar"]),
            "decoder": (DecoderGraph(model), ["z", *label], ["image"])}


def example_inputs(model: LatentVariableModel, part: str, n: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Inputs of one graph for n items: images in [0, 1] or codes from N(0, I), and for a
    conditional model one-hot labels of classes 0, 1, 2, ... (cycling); all float32."""
    if part == "encoder":
        first = torch.rand(n, *model.image_shape, generator=generator)
    else:
        first = torch.randn(n, model.latent_dim, generator=generator)
    if not model.conditional:
        return (first,)
    return first, torch.eye(model.num_classes)[torch.arange(n) % model.num_classes]


def export_onnx(model: LatentVariableModel, out: str | Path) -> list[Path]:
    """Write `out/encoder.onnx` and `out/decoder.onnx` (float32, CPU, a dynamic batch
    dimension named "batch"); return their paths. `model` is moved to the CPU in eval mode."""
    require_onnx()
    model = model.float().cpu().eval()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create {out}: {e.strerror}") from None
    written = []
    for part, (module, inputs, outputs) in graphs(model).items():
        args = example_inputs(model, part, EXAMPLE_BATCH)
        batch = torch.export.Dim("batch")
        shapes = tuple({0: batch} for _ in args)  # one batch size shared by x and label
        with torch.no_grad(), _quiet():
            program = torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
            torch.onnx.export(program, f=out / FILES[part], input_names=inputs,
                              output_names=outputs, dynamic_shapes=shapes, opset_version=OPSET,
                              dynamo=True, external_data=False, verbose=False)
        written.append(out / FILES[part])
    return written


@contextmanager
def _quiet():
    """Silence the exporters' progress logging and the deprecation notices torch's own
    internals raise (nothing a user could act on) for the duration; errors still show."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # a conditional graph's x and label share one batch dimension, named once
            warnings.filterwarnings("ignore", message=".*will not be used, since it shares")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
