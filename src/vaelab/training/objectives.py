"""Training objectives. Every term is in nats per image: summed over pixels, averaged over
the batch, so the numbers do not change with the batch size.

- `negative_elbo`: recon + beta * KL, one sample of z per image;
- `negative_iwae`: the K-sample importance-weighted bound (Burda et al. 2016), with the
  plain IWAE gradient or the doubly reparameterized one (DReG, Tucker et al. 2019).

`model` may be wrapped for data-parallel training (DDP keeps it in `.module`), so both go
through its forward pass, which DDP needs to synchronize the gradients.
"""

from __future__ import annotations

import math

import torch

from ..models.generative import LatentVariableModel


def _unwrap(model: torch.nn.Module) -> LatentVariableModel:
    return getattr(model, "module", model)


def negative_elbo(model: torch.nn.Module, x: torch.Tensor, beta: float | torch.Tensor = 1.0,
                  free_bits: float = 0.0, noise: torch.Tensor | None = None,
                  y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """-ELBO = E_q[-log p(x|z)] + beta * KL(q(z|x) || p(z)), one sample of z per image.

    Returns {"loss", "recon", "kl"} as scalars. `kl` is always the true KL (analytic where
    the prior allows, else the one-sample estimate); with free bits (Kingma et al. 2016,
    "Improved variational inference with IAF", eq. 15) the loss uses
    sum_j max(free_bits, E_batch[KL_j]) over the model's KL units instead.
    """
    outputs = model(x, noise, y)
    recon = -_unwrap(model).likelihood.log_prob(x, outputs["out"])  # (B,)
    kl_units = outputs["kl_units"]  # (B, U)
    kl = kl_units.sum(1).mean()
    kl_term = kl_units.mean(0).clamp(min=free_bits).sum() if free_bits > 0 else kl
    return {"loss": recon.mean() + beta * kl_term, "recon": recon.mean(), "kl": kl}


def negative_iwae(model: torch.nn.Module, x: torch.Tensor, k: int,
                  beta: float | torch.Tensor = 1.0, noise: torch.Tensor | None = None,
                  y: torch.Tensor | None = None, dreg: bool = False) -> dict[str, torch.Tensor]:
    """-L_K = -E[log 1/K sum_k w_k], w_k = p(x|z_k) p(z_k)^beta / q(z_k|x)^beta (Burda et al.
    2016, eq. 8; beta < 1 only during a KL warm-up). With K = 1 this is the negative ELBO
    with a one-sample KL.

    `noise` is (B, K, D). "recon" and "kl" are averages over the K samples of -log p(x|z)
    and log q - log p, for the logs. With `dreg`, the gradient of the inference network is
    sum_k w~_k^2 d log w_k / dz_k dz_k/dphi (Tucker et al. 2019, eq. 8): log q is taken
    with the posterior's parameters held fixed and the gradient reaching z_k is reweighted
    by w~_k; the generative side keeps the IWAE gradient sum_k w~_k d log w_k.
    """
    inner = _unwrap(model)
    b = len(x)
    if noise is None:
        noise = torch.randn(b, k, inner.latent_dim, device=x.device)
    outputs = model(x, noise.reshape(b * k, -1), y, k=k, detach_posterior=dreg)  # B*K rows
    x_k = x.repeat_interleave(k, dim=0)
    log_px = inner.likelihood.log_prob(x_k, outputs["out"]).reshape(b, k)
    log_ratio = outputs["log_ratio"].reshape(b, k)
    log_w = log_px + beta * log_ratio  # (B, K)
    bound = torch.logsumexp(log_w, dim=1) - math.log(k)  # (B,)
    loss = -bound.mean()
    if dreg:
        w_tilde = torch.softmax(log_w.detach(), dim=1)  # normalized importance weights
        z = outputs["z"]
        z.register_hook(lambda grad: grad * w_tilde.reshape(b * k, 1).to(grad.dtype))
        surrogate = -(w_tilde * log_w).sum(1).mean()
        loss = loss.detach() + surrogate - surrogate.detach()  # value: -L_K; gradient: DReG
    return {"loss": loss, "recon": -log_px.mean(), "kl": -log_ratio.mean()}


def beta_at(step: int, steps_per_epoch: int, beta: float, warmup_epochs: float) -> float:
    """KL weight at a training step: linear warm-up from 0 to beta (Bowman et al. 2016)."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, step / (warmup_epochs * steps_per_epoch))
