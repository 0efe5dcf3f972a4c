"""Importance-sampled log-likelihood: the IWAE bound of Burda et al. (2016, eq. 8).

    log p(x) >= L_K = E[ log (1/K) sum_k p(x, z_k) / q(z_k | x) ],  z_k ~ q(z | x)

L_1 is the ELBO, L_K never decreases with K, and L_K -> log p(x) as K grows. The estimate
for a batch of images is one (B, K) computation, decoded in chunks of at most `max_rows`
latent samples so that memory stays bounded whatever K is.
"""

from __future__ import annotations

import math

import torch

from .likelihoods import LOG_2PI
from .models import VAE

MAX_ROWS = 4096  # decoded samples per chunk: 4096 x 784 floats x a few tensors, ~50 MB;
#                 smaller chunks stay in cache and run faster than larger ones on CPU


@torch.no_grad()
def log_weights(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                max_rows: int = MAX_ROWS, bf16: bool = False) -> torch.Tensor:
    """log p(x, z_k) - log q(z_k | x) for K posterior samples of each image: (B, K) float64.

    `bf16` runs the decoder under bfloat16 autocast (AMX on recent CPUs); the likelihood,
    the densities and the log-sum-exp stay in float32 / float64."""
    mu, logvar = model.encode(x)  # (B, D) each
    b, d = mu.shape
    std = torch.exp(0.5 * logvar)
    out = torch.empty(b, k, dtype=torch.float64, device=x.device)
    k_chunk = max(1, max_rows // b)
    for start in range(0, k, k_chunk):
        n = min(k_chunk, k - start)
        eps = torch.randn(b, n, d, generator=generator, device=x.device)  # (B, n, D)
        z = mu[:, None] + std[:, None] * eps  # (B, n, D)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out_x = model.decode(z.reshape(b * n, d))  # (B*n, 1, 28, 28)
        targets = x[:, None].expand(b, n, *x.shape[1:]).reshape(b * n, *x.shape[1:])
        log_px_z = model.likelihood.log_prob(targets, out_x).reshape(b, n)
        log_pz = -0.5 * (LOG_2PI + z.square()).sum(-1)  # N(0, I)
        log_qz = -0.5 * (LOG_2PI + logvar[:, None] + eps.square()).sum(-1)  # exact for z above
        out[:, start:start + n] = (log_px_z + log_pz - log_qz).double()
    return out


def iwae_bound(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
               max_rows: int = MAX_ROWS, bf16: bool = False) -> torch.Tensor:
    """The K-sample bound L_K for each image, (B,) float64 nats (log-sum-exp in float64)."""
    w = log_weights(model, x, k, generator, max_rows, bf16)
    return torch.logsumexp(w, dim=1) - math.log(k)
