"""What a training run needs to stop and continue bitwise-exactly: its progress, the
optimizer and every random generator, packed for `trainer.pt`; and the signal handling that
turns Ctrl-C / SIGTERM into a clean stop at the next batch."""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..errors import RunError
from ..runs.checkpoint import ONLINE, load_weights


@dataclass
class Progress:
    """Where training stands; saved in trainer.pt, so resuming continues bitwise-exactly."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimizer steps
    batch: int = 0  # completed batches of the current epoch (nonzero only mid-epoch)
    perm: torch.Tensor | None = None  # the current epoch's order (CPU), when mid-epoch
    sums: torch.Tensor | None = None  # this rank's (loss, recon, kl) sums, images skipped
    best_val: float = math.inf
    best_epoch: int = 0


@dataclass
class Generators:
    """The run's random streams. `order` (CPU) shuffles the training images each epoch;
    `noise` (on the device) draws binarization thresholds and reparameterization noise."""

    order: torch.Generator
    noise: torch.Generator

    @classmethod
    def seeded(cls, seed: int, device: torch.device) -> Generators:
        return cls(torch.Generator().manual_seed(seed + 1),
                   torch.Generator(device=device).manual_seed(seed + 2))


class WeightAverage:
    """The model that is evaluated, sampled and saved as `model.safetensors`: an exponential
    moving average of the trained weights (Polyak averaging, as VDVAE and NVAE evaluate), or
    the trained model itself when `decay` is 0. With an average, the trained ("online")
    weights are saved beside it, so a resumed run continues both exactly."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.online = model
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                      use_buffers=True) if decay else None

    @property
    def model(self) -> torch.nn.Module:
        return self.averaged.module if self.averaged is not None else self.online

    def update(self) -> None:
        if self.averaged is not None:
            self.averaged.update_parameters(self.online)

    def online_weights(self) -> torch.nn.Module | None:
        return self.online if self.averaged is not None else None

    def state(self) -> dict[str, Any]:
        return {"ema_updates": int(self.averaged.n_averaged)} if self.averaged is not None \
            else {}

    def load(self, folder) -> None:
        load_weights(folder, self.model)
        if self.averaged is not None:
            load_weights(folder, self.online, ONLINE)

    def restore(self, state: dict[str, Any]) -> None:
        if self.averaged is not None:
            self.averaged.n_averaged.fill_(state.get("ema_updates", 0))


class StopSignals:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks; a second one aborts."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: leave the signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def pack(optimizer: torch.optim.Optimizer, generators: Generators,
         progress: Progress) -> dict[str, Any]:
    """trainer.pt's contents: tensors and plain data only (loaded with weights_only=True).

    The epoch sums are the global ones, so any number of processes can continue them."""
    state = {
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "order_rng": generators.order.get_state(),
        "noise_rng": generators.noise.get_state(),
        "noise_device": generators.noise.device.type,
        "epoch": progress.epoch, "step": progress.step, "batch": progress.batch,
        "best_val": progress.best_val, "best_epoch": progress.best_epoch,
    }
    if progress.batch:
        state["perm"] = progress.perm.cpu()
        state["sums"] = progress.sums.cpu()
    return state


def unpack(state: dict[str, Any], optimizer: torch.optim.Optimizer, generators: Generators,
           device: torch.device) -> Progress:
    """Restore `pack`'s contents into the optimizer and generators; return the progress."""
    try:
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        generators.order.set_state(state["order_rng"])
        if state["noise_device"] != device.type:
            raise RunError(f"this run was trained on {state['noise_device']}; resume it there "
                           f"(its random streams cannot continue on {device.type})")
        generators.noise.set_state(state["noise_rng"])
        progress = Progress(epoch=state["epoch"], step=state["step"], batch=state["batch"],
                            best_val=state["best_val"], best_epoch=state["best_epoch"])
        if progress.batch:
            progress.perm = state["perm"]
            progress.sums = state["sums"].to(device)
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise RunError(f"trainer state does not fit this run ({type(e).__name__}: {e})"
                       ) from None
    return progress
