"""Observation models log p(x|z) and the KL term of the ELBO. Every value is in nats.

A likelihood tells the decoder how many output channels it needs for an image of C channels
(`out_channels`), scores images against the decoder's output (`log_prob`: (B,) float32
nats, summed over pixels and channels), and turns that output into an image in [0, 1]
(`mean`) or a draw from it (`sample`). The discretized logistic mixture lives in logistic.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .logistic import LogisticMixture

LOG_2PI = math.log(2 * math.pi)
MIN_LOG_STD = math.log(1e-3)  # keeps a learned Gaussian std from collapsing to zero


class Bernoulli(nn.Module):
    """p(x|z) = prod Bernoulli(x; sigmoid(logits)). The decoder returns logits, one per
    pixel and channel."""

    def out_channels(self, image_channels: int) -> int:
        return image_channels

    def log_prob(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) targets and logits -> (B,) log-likelihood in nats.

        x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = x l - softplus(l): the same value
        as -binary_cross_entropy_with_logits, as stable (softplus never overflows), and
        about 3x faster on CPU, which matters in the K-sample likelihood evaluation.
        """
        logits = logits.float()  # a bf16 decoder's logits are scored in float32
        return (x * logits - F.softplus(logits)).flatten(1).sum(1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def sample(self, logits: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Binary images, each pixel a Bernoulli draw."""
        return torch.bernoulli(torch.sigmoid(logits.float()), generator=generator)


class Gaussian(nn.Module):
    """p(x|z) = prod N(x; mean, std^2) with one std for all pixels, fixed or learned.

    The learned std is the "sigma-VAE" choice (Rybkin et al. 2021): one scalar, so the model
    balances reconstruction against KL by itself. Values are densities: they can be negative
    and are not comparable with the Bernoulli likelihood's.
    """

    def __init__(self, std: float, learned: bool):
        super().__init__()
        log_std = torch.tensor(math.log(std))
        if learned:
            self.log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("log_std", log_std, persistent=False)

    def out_channels(self, image_channels: int) -> int:
        return image_channels

    def log_prob(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) targets and means -> (B,) log-density in nats."""
        log_std = self.log_std.clamp(min=MIN_LOG_STD)
        z = (x - mean.float()) * torch.exp(-log_std)
        return -(0.5 * z.square() + log_std + 0.5 * LOG_2PI).flatten(1).sum(1)

    def mean(self, mean: torch.Tensor) -> torch.Tensor:
        return mean.clamp(0, 1)

    def sample(self, mean: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """mean + std * noise, clamped to [0, 1], the range of images."""
        std = self.log_std.clamp(min=MIN_LOG_STD).exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return (mean.float() + std * noise).clamp(0, 1)


LIKELIHOODS = {
    "bernoulli": lambda cfg: Bernoulli(),
    "gaussian": lambda cfg: Gaussian(cfg.gaussian_std, learned=False),
    "gaussian-learned": lambda cfg: Gaussian(cfg.gaussian_std, learned=True),
    "logistic-mixture": lambda cfg: LogisticMixture(cfg.logistic_components),
}


def build_likelihood(cfg: ModelConfig) -> nn.Module:
    return LIKELIHOODS[cfg.likelihood_name](cfg)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per latent dimension, (B, D) -> (B, D) nats.

    Kingma & Welling (2014), Appendix B: -KL = 1/2 sum(1 + log sigma^2 - mu^2 - sigma^2).
    """
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) per dimension, in nats:
    1/2 (logvar_p - logvar_q + (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1)."""
    return 0.5 * (logvar_p - logvar_q - 1
                  + (logvar_q.exp() + (mu_q - mu_p).square()) * torch.exp(-logvar_p))
