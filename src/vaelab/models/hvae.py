"""A hierarchical VAE with top-down inference: residual MLP cells in the layout of VDVAE
(Child 2021), which follows the ladder / top-down scheme of LVAE (Sønderby et al. 2016) and
IAF-VAE (Kingma et al. 2016).

    bottom-up (deterministic):  x -> h_1 -> h_2 -> ... -> h_L          (residual cells)
    top-down (shared by p, q):  s_L -> z_L -> s_{L-1} -> z_{L-1} -> ... -> z_1 -> output

At layer l the top-down state s gives the prior p(z_l | z_>l); the state together with
the bottom-up feature h_l gives the posterior q(z_l | z_>l, x). Both are diagonal
Gaussians, so each layer's KL is analytic given the sampled layers above it.

Images of any shape (C, H, W) are read as vectors of C*H*W pixels; the output layer gives
the likelihood's parameters, out_channels(C) per pixel, reshaped to (P, H, W).

Latent codes are *whitened*: the code of layer l is eps_l with z_l = mu_p + sigma_p eps_l,
so the prior over the concatenated code (N, layers * latent_dim) is exactly N(0, I). That is
what `encode`, `decode` and `sample` speak, so every latent-space figure works unchanged;
training and the importance-sampled likelihood use the exact layer-by-layer posterior.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .generative import LatentVariableModel, one_hot
from .likelihoods import LOG_2PI, gaussian_kl
from .priors import log_normal

LOGVAR_BOUND = 10.0  # log-variances are soft-clamped to (-10, 10), as NVAE soft-clamps
#                     its log-scales to (-5, 5): one runaway update cannot overflow exp()


def soft_clamp(logvar: torch.Tensor) -> torch.Tensor:
    """bound * tanh(logvar / bound): the identity near 0, smooth, never beyond +-bound."""
    return LOGVAR_BOUND * torch.tanh(logvar / LOGVAR_BOUND)


class ResidualCell(nn.Module):
    """x + W2 gelu(W1 LayerNorm(x)): a pre-norm MLP cell. The last layer starts scaled by
    1/sqrt(depth), as in VDVAE, so a deep stack starts close to the identity.

    The normalisation bounds what one cell can add by its weights, whatever the input: an
    unnormalised cell (x + W2 gelu(W1 gelu(x))) learned a gain of 65 on one faint test digit,
    whose features, posteriors and likelihood then ran away (README, "hierarchical VAE")."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)
        with torch.no_grad():
            self.outer.weight.mul_(1 / math.sqrt(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(F.gelu(self.inner(self.norm(x))))


class TopDownLayer(nn.Module):
    """One stochastic layer of the top-down path: prior and posterior heads, then cells."""

    def __init__(self, width: int, latent_dim: int, blocks: int, depth: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.prior = nn.Linear(width, 2 * latent_dim + width)  # mu, logvar, state update
        self.posterior = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(),
                                       nn.Linear(width, 2 * latent_dim))
        self.project = nn.Linear(latent_dim, width)  # z -> state
        self.cells = nn.Sequential(*[ResidualCell(width, depth) for _ in range(blocks)])
        with torch.no_grad():  # start every posterior at its prior (VDVAE's zero init)
            self.posterior[-1].weight.zero_()
            self.posterior[-1].bias.zero_()
            self.prior.weight[:2 * latent_dim].zero_()
            self.prior.bias.zero_()

    def prior_of(self, s: torch.Tensor):
        """(B, W) -> prior mean and log-variance (B, d) each (float32), and the new state."""
        out = self.prior(s)
        mu, logvar, update = out.split([self.latent_dim, self.latent_dim, s.shape[1]], dim=1)
        return mu.float(), soft_clamp(logvar.float()), s + update

    def posterior_of(self, s: torch.Tensor, h: torch.Tensor):
        mu, logvar = self.posterior(torch.cat([s, h], dim=1)).float().chunk(2, dim=1)
        return mu, soft_clamp(logvar)

    def advance(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.cells(s + self.project(z))


class HierarchicalVAE(LatentVariableModel):
    """`layers` stochastic layers of `latent_dim` units each, a residual width `width`,
    `blocks` residual cells per layer on each path. Optionally conditioned on a class."""

    def __init__(self, image_shape: tuple[int, int, int], likelihood: nn.Module, layers: int,
                 latent_dim: int, width: int, blocks: int, num_classes: int = 0):
        super().__init__()
        depth = 2 * layers * (blocks + 1)
        self.layer_dim = latent_dim
        self.latent_dim = layers * latent_dim  # the whitened code of all layers together
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.likelihood = likelihood
        c, h, w = image_shape
        self.out_shape = (likelihood.out_channels(c), h, w)  # (P, H, W) of the output layer
        self.stem = nn.Linear(c * h * w + num_classes, width)
        self.up = nn.ModuleList(nn.Sequential(*[ResidualCell(width, depth)
                                                for _ in range(blocks)]) for _ in range(layers))
        self.top = nn.Parameter(torch.zeros(width))  # the top-down path's starting state
        self.label = nn.Linear(num_classes, width, bias=False) if num_classes else None
        self.down = nn.ModuleList(TopDownLayer(width, latent_dim, blocks, depth)
                                  for _ in range(layers))  # top layer first
        self.head = nn.Sequential(nn.GELU(), nn.Linear(width, math.prod(self.out_shape)))

    # --- the two paths --------------------------------------------------------------

    def infer(self, x: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Bottom-up features of (B, C, H, W) images, top layer first: L tensors (B, W)."""
        h = self.stem(self._with_label(x.flatten(1), y))
        features = []
        for cells in self.up:
            h = cells(h)
            features.append(h)
        return features[::-1]

    def _start(self, batch: int, y: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        # encode / decode pass x.shape[0], not len(x): an ONNX export traces shape[0] as the
        # dynamic batch size, where len() would fix it to the example's (runs/onnx.py)
        s = self.top.expand(batch, -1).to(like.dtype)
        if self.label is not None:
            s = s + self.label(one_hot(y, self.num_classes, like.dtype))
        return s

    def generate(self, features: list[torch.Tensor], noise: torch.Tensor,
                 y: torch.Tensor | None = None,
                 detach_posterior: bool = False) -> dict[str, torch.Tensor]:
        """The top-down pass under the posterior, with its reparameterization noise (B, D).

        Returns the decoder output, the KL of every latent unit given the layers above
        (B, D), and log p(z) - log q(z | x) at the drawn z (B,). (DReG's fixed-posterior
        form is not defined here: each layer's posterior depends on the samples above.)"""
        assert not detach_posterior, "iwae-dreg is for one-layer models (see config.py)"
        s = self._start(len(noise), y, features[0])
        kls, log_ratio = [], torch.zeros(len(noise), device=noise.device)
        for layer, h, eps in zip(self.down, features, noise.split(self.layer_dim, dim=1)):
            p_mu, p_logvar, s = layer.prior_of(s)
            q_mu, q_logvar = layer.posterior_of(s, h)
            z = q_mu + torch.exp(0.5 * q_logvar) * eps
            kls.append(gaussian_kl(q_mu, q_logvar, p_mu, p_logvar))
            log_q = -0.5 * (LOG_2PI + q_logvar + eps.square()).sum(-1)  # exact for z above
            log_ratio = log_ratio + log_normal(z, p_mu, p_logvar) - log_q
            s = layer.advance(s, z)
        return {"out": self._output(s), "kl_units": torch.cat(kls, dim=1),
                "log_ratio": log_ratio}

    # --- whitened codes: what encode / decode / sample speak ----------------------------

    def encode(self, x: torch.Tensor,
               y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means and log-variances of the whitened code (B, D) each, following
        the posterior means down the hierarchy."""
        features = self.infer(x, y)
        s = self._start(x.shape[0], y, features[0])
        mus, logvars = [], []
        for layer, h in zip(self.down, features):
            p_mu, p_logvar, s = layer.prior_of(s)
            q_mu, q_logvar = layer.posterior_of(s, h)
            mus.append((q_mu - p_mu) * torch.exp(-0.5 * p_logvar))
            logvars.append(q_logvar - p_logvar)
            s = layer.advance(s, q_mu)
        return torch.cat(mus, dim=1), torch.cat(logvars, dim=1)

    def decode(self, code: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Whitened codes (B, D) -> the likelihood's parameters (B, P, H, W): ancestral
        sampling with the given noise."""
        s = self._start(code.shape[0], y, self.top)
        for layer, eps in zip(self.down, code.split(self.layer_dim, dim=1)):
            p_mu, p_logvar, s = layer.prior_of(s)
            s = layer.advance(s, p_mu + torch.exp(0.5 * p_logvar) * eps)
        return self._output(s)

    # --- helpers ------------------------------------------------------------------------

    def _output(self, s: torch.Tensor) -> torch.Tensor:
        return self.head(s).reshape(s.shape[0], *self.out_shape)

    def _with_label(self, flat: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.num_classes:
            return flat
        return torch.cat([flat, one_hot(y, self.num_classes, flat.dtype)], dim=1)

