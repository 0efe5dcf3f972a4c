"""Training objectives. Every term is in nats per image: summed over pixels, averaged over
the batch, so the numbers do not change with the batch size."""

from __future__ import annotations

import torch

from .likelihoods import kl_standard_normal
from .models import VAE


def negative_elbo(model: VAE, x: torch.Tensor, beta: float | torch.Tensor = 1.0,
                  free_bits: float = 0.0,
                  noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """-ELBO = E_q[-log p(x|z)] + beta * KL(q(z|x) || p(z)), one sample of z per image.

    Returns {"loss", "recon", "kl"} as scalars. `kl` is always the true KL; with free bits
    (Kingma et al. 2016, "Improved variational inference with IAF", eq. 15) the loss uses
    sum_j max(free_bits, E_batch[KL_j]) instead. `model` may be wrapped for data-parallel
    training; `noise` is passed on to its forward pass.
    """
    outputs = model(x, noise)
    likelihood = getattr(model, "module", model).likelihood  # DDP keeps the VAE in .module
    recon = -likelihood.log_prob(x, outputs["out"])  # (B,)
    kl_dims = kl_standard_normal(outputs["mu"], outputs["logvar"])  # (B, D)
    kl = kl_dims.sum(1).mean()
    kl_term = kl_dims.mean(0).clamp(min=free_bits).sum() if free_bits > 0 else kl
    return {"loss": recon.mean() + beta * kl_term, "recon": recon.mean(), "kl": kl}


def beta_at(step: int, steps_per_epoch: int, beta: float, warmup_epochs: float) -> float:
    """KL weight at a training step: linear warm-up from 0 to beta (Bowman et al. 2016)."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, step / (warmup_epochs * steps_per_epoch))
