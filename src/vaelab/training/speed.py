"""Speed settings, resolved per device: numeric precision, fused optimizers, torch.compile.

bf16 autocast runs the matrix products and convolutions in bfloat16 (AVX-512 BF16 / AMX on
CPUs that have them, tensor cores on GPUs) while the weights, the optimizer state and the
likelihood stay in float32, so the loss is as accurate as in float32 (see the README's
benchmark table for the measured difference). `auto` picks bf16 where the hardware runs it
natively, float32 elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import warnings
from collections.abc import Callable

import torch

from ..errors import ConfigError, SlowPathWarning

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
HEAP_BLOCK_LIMIT = 32 << 20  # bytes: blocks up to this size come from the reusable heap
HEAP_KEEP = 128 << 20  # bytes of free heap kept for reuse instead of returned to the OS


def tune_allocator() -> None:
    """Serve tensor-sized blocks from glibc's heap instead of fresh mmaps.

    By default glibc maps every block above ~128 KiB afresh and unmaps it on free, so each
    training step's weight casts and activations page-fault their memory in again (about
    100 faults per step of the classic MLP, measured). Raising the thresholds reuses freed
    blocks: 0 faults per step and about 10% faster steps. A no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_LIMIT)
        libc.mallopt(M_TRIM_THRESHOLD, HEAP_KEEP)
    except (OSError, AttributeError):  # musl or another C library: keep its defaults
        pass


def bf16_native(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 matrix work in hardware (not by emulation)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False  # MPS: bf16 autocast is incomplete there; float32 is the safe choice


def resolve_precision(name: str, device: torch.device) -> str:
    """"auto" -> "bf16" where it is native, else "fp32"; an explicit choice is checked, and
    an explicit bf16 that the hardware only emulates warns once (it runs about 10x slower
    than fp32 then, without a word otherwise)."""
    if name == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    if name == "bf16" and device.type == "mps":
        raise ConfigError("--precision bf16 is not supported on mps; use fp32")
    if name == "bf16" and device.type == "cpu" and not bf16_native(device):
        warnings.warn("this CPU has no native bf16 (AVX-512 BF16 or AMX), so --precision bf16 "
                      "is emulated and runs several times slower than fp32; use --precision "
                      "auto", SlowPathWarning, stacklevel=2)
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for `precision` ("fp32" is a no-op)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def build_optimizer(name: str, params, lr: float, weight_decay: float, beta2: float,
                    device: torch.device) -> torch.optim.Optimizer:
    """Adam/AdamW, fused into one kernel per step where this torch build has it (CPU from
    torch 2.4, CUDA), else the multi-tensor (foreach) version. Both do the same maths."""
    params = list(params)
    kwargs = {"lr": lr, "weight_decay": weight_decay, "betas": (0.9, beta2)}
    optimizer = OPTIMIZERS[name]
    if device.type in ("cpu", "cuda"):
        try:
            return optimizer(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # an older torch without fused CPU Adam
            pass
    return optimizer(params, **kwargs)


def maybe_compile(fn: Callable, enabled: bool) -> Callable:
    """torch.compile `fn` with static shapes (an epoch has at most two batch sizes)."""
    if not enabled:
        return fn
    return torch.compile(fn, dynamic=False)
