"""Priors p(z) of the one-stochastic-layer VAE: the standard normal, a learned mixture of
Gaussians, and the VampPrior (Tomczak & Welling 2018), a mixture of the encoder's own
posteriors at learned pseudo-inputs.

A conditional model may also use a learned Gaussian per class, p(z | y) (the conditional
prior of Sohn et al. 2015, here with the class as its input).

Every prior gives `log_prob(z, encoder, y)` (B, D) -> (B,) nats and
`sample(n, encoder, ...)`. The Gaussian ones (standard normal, class prior) also give the
KL against a Gaussian posterior in closed form; for the mixtures the ELBO estimates it from
the posterior sample (one-sample Monte Carlo, as in the VampPrior paper). The encoder is
passed in, not stored, so its weights are saved only once.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .generative import one_hot
from .likelihoods import LOG_2PI, gaussian_kl, kl_standard_normal

PSEUDO_INPUT_INIT = (-2.0, 0.5)  # logits of the pseudo-inputs: mean, std (pixels ~0.12)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).square() * torch.exp(-logvar)).sum(-1)


def _mixture_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                      log_weights: torch.Tensor) -> torch.Tensor:
    """log sum_k pi_k N(z; mu_k, var_k): z (B, D), components (K, D), weights (K,) -> (B,)."""
    per_component = log_normal(z[:, None, :], mu[None], logvar[None])  # (B, K)
    return torch.logsumexp(per_component + log_weights, dim=1)


def _mixture_sample(n: int, mu: torch.Tensor, logvar: torch.Tensor, log_weights: torch.Tensor,
                    temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    index = torch.multinomial(log_weights.softmax(0), n, replacement=True, generator=generator)
    eps = torch.randn(n, mu.shape[1], generator=generator, device=mu.device)
    return mu[index] + temperature * torch.exp(0.5 * logvar[index]) * eps


class StandardNormal(nn.Module):
    """p(z) = N(0, I)."""

    analytic_kl = True

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: torch.Tensor, encoder: nn.Module | None = None,
                 y: torch.Tensor | None = None) -> torch.Tensor:
        return -0.5 * (LOG_2PI + z.square()).sum(-1)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor,
           y: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q || p) per latent dimension, (B, D), in closed form."""
        return kl_standard_normal(mu, logvar)

    def sample(self, n: int, encoder: nn.Module | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, device: torch.device | str = "cpu",
               y: torch.Tensor | None = None) -> torch.Tensor:
        return temperature * torch.randn(n, self.latent_dim, generator=generator, device=device)


class MixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(mu_k, diag(var_k)) with learned means, variances and weights.
    The means start spread out like draws from N(0, I), so the components differ at once."""

    analytic_kl = False

    def __init__(self, latent_dim: int, components: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.mu = nn.Parameter(torch.randn(components, latent_dim))
        self.logvar = nn.Parameter(torch.zeros(components, latent_dim))
        self.logits = nn.Parameter(torch.zeros(components))

    def log_prob(self, z: torch.Tensor, encoder: nn.Module | None = None,
                 y: torch.Tensor | None = None) -> torch.Tensor:
        return _mixture_log_prob(z, self.mu.float(), self.logvar.float(),
                                 self.logits.float().log_softmax(0))

    def sample(self, n: int, encoder: nn.Module | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, device: torch.device | str = "cpu",
               y: torch.Tensor | None = None) -> torch.Tensor:
        return _mixture_sample(n, self.mu, self.logvar, self.logits.log_softmax(0),
                               temperature, generator)


class VampPrior(nn.Module):
    """p(z) = 1/K sum_k q(z | u_k): the encoder's posteriors at K learned pseudo-inputs u_k,
    images of the data's shape (C, H, W) in [0, 1], kept there by a sigmoid (Tomczak &
    Welling 2018, eq. 9)."""

    analytic_kl = False

    def __init__(self, latent_dim: int, components: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.latent_dim = latent_dim
        mean, std = PSEUDO_INPUT_INIT
        self.pseudo_logits = nn.Parameter(mean + std * torch.randn(components, *image_shape))

    def components(self, encoder: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The K posterior Gaussians at the pseudo-inputs: (K, D) means and log-variances."""
        return encoder(torch.sigmoid(self.pseudo_logits))

    def log_prob(self, z: torch.Tensor, encoder: nn.Module,
                 y: torch.Tensor | None = None) -> torch.Tensor:
        mu, logvar = self.components(encoder)
        uniform = torch.full((len(mu),), -math.log(len(mu)), device=z.device)
        return _mixture_log_prob(z, mu, logvar, uniform)

    def sample(self, n: int, encoder: nn.Module, temperature: float = 1.0,
               generator: torch.Generator | None = None, device: torch.device | str = "cpu",
               y: torch.Tensor | None = None) -> torch.Tensor:
        mu, logvar = self.components(encoder)
        uniform = torch.zeros(len(mu), device=mu.device)
        return _mixture_sample(n, mu, logvar, uniform, temperature, generator)


class ClassPrior(nn.Module):
    """p(z | y) = N(mu_y, diag(var_y)): one learned Gaussian per class, for conditional
    models. Codes of class y are drawn where the encoder puts that class's images, so a
    sampled code and the label it is decoded with never disagree. The means start at 0 and
    the variances at 1: at first this is the standard normal prior."""

    analytic_kl = True

    def __init__(self, latent_dim: int, classes: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.mu = nn.Parameter(torch.zeros(classes, latent_dim))
        self.logvar = nn.Parameter(torch.zeros(classes, latent_dim))

    def _gaussian(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian of each row's class (blended for blended label rows): (B, D) each."""
        weights = one_hot(y, len(self.mu), torch.float32)  # (B, Y)
        return weights @ self.mu.float(), weights @ self.logvar.float()

    def log_prob(self, z: torch.Tensor, encoder: nn.Module | None = None,
                 y: torch.Tensor | None = None) -> torch.Tensor:
        mu, logvar = self._gaussian(y)
        return log_normal(z, mu, logvar)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor,
           y: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q || p(z | y)) per latent dimension, (B, D), in closed form."""
        prior_mu, prior_logvar = self._gaussian(y)
        return gaussian_kl(mu, logvar, prior_mu, prior_logvar)

    def sample(self, n: int, encoder: nn.Module | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, device: torch.device | str = "cpu",
               y: torch.Tensor | None = None) -> torch.Tensor:
        mu, logvar = self._gaussian(y)
        eps = torch.randn(n, self.latent_dim, generator=generator, device=mu.device)
        return mu + temperature * torch.exp(0.5 * logvar) * eps
