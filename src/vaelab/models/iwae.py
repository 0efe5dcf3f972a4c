"""Importance-sampled log-likelihood: the IWAE bound of Burda et al. (2016, eq. 8).

    log p(x) >= L_K = E[ log (1/K) sum_k p(x, z_k) / q(z_k | x) ],  z_k ~ q(z | x)

L_1 is the ELBO, L_K never decreases with K, and L_K -> log p(x) as K grows. The estimate
for a batch of images is one (B, K) computation, decoded in chunks of at most `max_rows`
latent samples so that memory stays bounded whatever K is.
"""

from __future__ import annotations

import math

import torch

from .generative import LatentVariableModel

# Decoder outputs per chunk: 4096 MNIST images of 784 values each, times a few tensors, is
# about 50 MB; smaller chunks stay in cache and run faster than larger ones on CPU. Larger
# images, or likelihoods with more parameters per pixel, get proportionally fewer rows.
MAX_DECODED_VALUES = 4096 * 784


def max_rows_for(model: LatentVariableModel) -> int:
    """Latent samples per decoded chunk for this model: 4096 for MNIST with one output per
    pixel (Bernoulli, Gaussian), fewer for larger images or a logistic mixture."""
    c, h, w = model.image_shape
    return max(1, MAX_DECODED_VALUES // (model.likelihood.out_channels(c) * h * w))


@torch.no_grad()
def log_weights(model: LatentVariableModel, x: torch.Tensor, k: int,
                generator: torch.Generator | None = None, max_rows: int | None = None,
                bf16: bool = False, y: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x, z_k) - log q(z_k | x) for K posterior samples of each image: (B, K) float64.

    The encoder runs once per image; the samples go through the model's `generate` in
    chunks of at most `max_rows` samples (None: `max_rows_for(model)`). `bf16` runs the
    networks under bfloat16 autocast; the likelihood, the densities and the log-sum-exp
    stay in float32 / float64."""
    b = len(x)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        features = model.infer(x, y)
    out = torch.empty(b, k, dtype=torch.float64, device=x.device)
    k_chunk = max(1, (max_rows_for(model) if max_rows is None else max_rows) // b)
    for start in range(0, k, k_chunk):
        n = min(k_chunk, k - start)
        eps = torch.randn(b, n, model.latent_dim, generator=generator, device=x.device)
        repeated = [f.repeat_interleave(n, dim=0) for f in features]  # (B*n, ...)
        y_n = y.repeat_interleave(n, dim=0) if y is not None else None
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            outputs = model.generate(repeated, eps.reshape(b * n, -1), y_n)
        log_px_z = model.likelihood.log_prob(x.repeat_interleave(n, dim=0), outputs["out"])
        out[:, start:start + n] = (log_px_z + outputs["log_ratio"].float()).reshape(b, n).double()
    return out


def iwae_bound(model: LatentVariableModel, x: torch.Tensor, k: int,
               generator: torch.Generator | None = None, max_rows: int | None = None,
               bf16: bool = False, y: torch.Tensor | None = None) -> torch.Tensor:
    """The K-sample bound L_K for each image, (B,) float64 nats (log-sum-exp in float64)."""
    w = log_weights(model, x, k, generator, max_rows, bf16, y)
    return torch.logsumexp(w, dim=1) - math.log(k)
