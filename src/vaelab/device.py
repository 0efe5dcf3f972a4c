"""Which device to run on."""

from __future__ import annotations

import torch

from .errors import ConfigError


def pick_device(name: str | torch.device) -> torch.device:
    """"auto" picks cuda, then mps, then cpu; an explicit choice ("cuda", "cuda:1", a
    torch.device) must be available here, else one ConfigError line says so."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if str(name) == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device {name!r} is not a device name ({e})") from None
    if ((device.type == "cuda" and not cuda) or (device.type == "mps" and not mps)
            or device.type not in ("cpu", "cuda", "mps")):
        raise ConfigError(f"device {name} was requested but is not available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {name} was requested but this machine has "
                          f"{torch.cuda.device_count()} CUDA devices")
    return device
