"""One training step, one evaluation step, and the schedule they follow.

`train_step` and `eval_step` are plain functions of a loss function, an optimizer and a
batch: bf16, `torch.compile` and the update guard are arguments, not forks of the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import ObjectiveConfig, TrainConfig
from ..data.datasets import eval_batches
from ..models.generative import LatentVariableModel
from .objectives import negative_elbo, negative_iwae
from .speed import autocast, maybe_compile

VAL_NOISE_SEED = 1234  # validation draws the same z noise every epoch: comparable numbers
TERMS = ("loss", "recon", "kl")
EVAL_BATCH_SIZE = 128  # as small as a training batch: peak memory 60 MB lower than at 1,000

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor],
                  dict[str, torch.Tensor]]


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up over `lr_warmup_epochs` (Goyal et al. 2017), then constant or cosine."""
    warmup = round(cfg.lr_warmup_epochs * steps_per_epoch)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "cosine":  # Loshchilov & Hutter (2017), without restarts
        progress = (step - warmup) / (cfg.epochs * steps_per_epoch - warmup)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * progress))
    return cfg.lr


def make_loss(model: torch.nn.Module, objective: ObjectiveConfig, device: torch.device,
              precision: str, compile: bool) -> LossFn:
    """(x, noise, y, beta) -> the objective's terms, under the chosen precision, maybe
    compiled. beta is a tensor, so a KL warm-up does not recompile the graph at every step."""
    def loss(x: torch.Tensor, noise: torch.Tensor, y: torch.Tensor | None, beta: torch.Tensor):
        with autocast(device, precision):
            if objective.kind == "elbo":
                return negative_elbo(model, x, beta, objective.free_bits, noise, y)
            return negative_iwae(model, x, objective.k, beta, noise, y,
                                 dreg=objective.kind == "iwae-dreg")
    return maybe_compile(loss, compile)


@dataclass(frozen=True)
class UpdateGuard:
    """Which updates to refuse (as in VDVAE, Child 2021): non-finite ones, and those whose
    gradient norm exceeds `skip_threshold`; and the norm to clip the rest to."""

    skip_nonfinite: bool = False
    skip_threshold: float = 0.0
    grad_clip: float = 0.0

    @classmethod
    def of(cls, tc: TrainConfig) -> UpdateGuard:
        return cls(tc.skip_nonfinite, tc.skip_threshold, tc.grad_clip)

    @property
    def skips(self) -> bool:
        return self.skip_nonfinite or self.skip_threshold > 0


def train_step(loss_fn: LossFn, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               noise: torch.Tensor, y: torch.Tensor | None, beta: torch.Tensor,
               share: float = 1.0, guard: UpdateGuard = UpdateGuard()) -> torch.Tensor | None:
    """One update; returns the detached (loss, recon, kl) as a (3,) tensor (no host sync).

    `share` scales this process's batch mean so that DDP's average over processes equals
    the mean over the global batch (1 in a single process). An update the guard refuses is
    skipped and None returned; deciding that costs one host sync per step."""
    losses = loss_fn(x, noise, y, beta)
    optimizer.zero_grad(set_to_none=True)
    (losses["loss"] * share if share != 1.0 else losses["loss"]).backward()
    if guard.skips or guard.grad_clip:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, guard.grad_clip or math.inf)
        if guard.skips:
            norm = (losses["loss"].detach() + grad_norm).item()  # inf or nan if either is
            if not math.isfinite(norm) or (guard.skip_threshold
                                           and grad_norm.item() > guard.skip_threshold):
                optimizer.zero_grad(set_to_none=True)
                return None
    optimizer.step()
    return torch.stack([losses[k].detach() for k in TERMS])


@torch.no_grad()
def eval_step(model: LatentVariableModel, x: torch.Tensor, y: torch.Tensor | None,
              beta: float) -> torch.Tensor:
    """(loss, recon, kl) for one batch, with the target beta and no free bits."""
    losses = negative_elbo(model, x, beta, y=y if model.conditional else None)
    return torch.stack([losses[k] for k in TERMS])


def evaluate_loss(model: LatentVariableModel, split, beta: float,
                  batch_size: int = EVAL_BATCH_SIZE) -> dict[str, float]:
    """Mean negative ELBO terms over a split, in nats per image (one z sample per image)."""
    model.eval()
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(VAL_NOISE_SEED)
        sums = torch.zeros(3, device=device)
        for x, y in eval_batches(split, batch_size):
            sums += eval_step(model, x, y, beta) * len(x)
    model.train()
    return dict(zip(TERMS, (sums / len(split)).tolist()))
