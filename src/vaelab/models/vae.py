"""The models, composed from parts: encoder network, decoder network, likelihood and prior.

`MODELS` maps an architecture name to a builder; `build_model` turns a `ModelConfig` into a
model. All user-facing images are (N, 1, 28, 28) in [0, 1]; a model that works at 32x32
pads its inputs and crops its outputs itself. Conditional models take class labels `y`,
(N,) integers (or (N, C) soft one-hot rows) wherever they take images or codes.

See `generative.py` for the interface every model speaks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..data.datasets import IMAGE_SIZE, PIXELS
from .generative import LatentVariableModel, one_hot
from .hvae import HierarchicalVAE
from .likelihoods import LOG_2PI, build_likelihood
from .nn import conv_decoder, conv_encoder, mlp_decoder, mlp_encoder
from .priors import ClassPrior, MixturePrior, StandardNormal, VampPrior, log_normal

PADDED_SIZE = 32
NUM_CLASSES = 10  # every supported dataset has ten classes


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mu, diag(exp(logvar))). Pads 28x28 inputs to the network's size; a
    conditional encoder appends the one-hot label to the body's features."""

    def __init__(self, body: nn.Module, head: nn.Module, pad: int, num_classes: int = 0):
        super().__init__()
        self.body = body
        self.head = head
        self.pad = pad
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor,
                y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 28, 28) in [0, 1] -> mu, logvar, each (B, D)."""
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        h = self.body(x)
        if self.num_classes:
            h = torch.cat([h, one_hot(y, self.num_classes, h.dtype)], dim=1)
        mu, logvar = self.head(h).float().chunk(2, dim=1)  # float32 even under bf16 autocast
        return mu, logvar

    encode = forward


class Decoder(nn.Module):
    """p(x|z): the decoder network plus its likelihood. Crops padded outputs to 28x28; a
    conditional decoder reads the one-hot label beside the code."""

    def __init__(self, net: nn.Module, likelihood: nn.Module, pad: int, num_classes: int = 0):
        super().__init__()
        self.net = net
        self.likelihood = likelihood
        self.pad = pad
        self.num_classes = num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, 1, 28, 28) logits (Bernoulli) or means (Gaussian)."""
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z.dtype)], dim=1)
        out = self.net(z)
        if self.pad:
            out = out[..., self.pad:-self.pad, self.pad:-self.pad]
        return out

    decode = forward

    def images(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, 1, 28, 28) mean images in [0, 1]."""
        return self.likelihood.mean(self(z, y))


class VAE(LatentVariableModel):
    """A variational autoencoder with one stochastic layer: a Gaussian encoder, a decoder,
    and a prior (standard normal unless given)."""

    def __init__(self, encoder: GaussianEncoder, decoder: Decoder, latent_dim: int,
                 prior: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.num_classes = encoder.num_classes
        self.prior = prior if prior is not None else StandardNormal(latent_dim)

    @property
    def likelihood(self) -> nn.Module:
        return self.decoder.likelihood

    def encode(self, x: torch.Tensor,
               y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, 1, 28, 28) in [0, 1] -> (mu, logvar), each (N, latent_dim)."""
        return self.encoder(x, y)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (N, latent_dim) -> logits (Bernoulli) or means (Gaussian), (N, 1, 28, 28)."""
        return self.decoder(z, y)

    def infer(self, x: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        return list(self.encoder(x, y))

    def generate(self, features: list[torch.Tensor], noise: torch.Tensor,
                 y: torch.Tensor | None = None, detach_posterior: bool = False,
                 ) -> dict[str, torch.Tensor]:
        """Decode z = mu + sigma * noise (Kingma & Welling 2014, eq. 10).

        `detach_posterior` evaluates log q(z|x) with the posterior's parameters held fixed
        while z keeps its path to them: the score-function-free form that DReG needs
        (Tucker et al. 2019, eq. 7). The sampled z is returned for its gradient hook."""
        mu, logvar = features
        z = mu + noise * torch.exp(0.5 * logvar)  # (B, D)
        if detach_posterior:
            log_q = log_normal(z, mu.detach(), logvar.detach())
        else:
            log_q = -0.5 * (LOG_2PI + logvar + noise.square()).sum(-1)  # exact, and cheaper
        log_ratio = self.prior.log_prob(z, self.encoder, y) - log_q
        if self.prior.analytic_kl:
            kl_units = self.prior.kl(mu, logvar, y)  # (B, D)
        else:
            kl_units = -log_ratio[:, None]  # one-sample Monte Carlo KL, (B, 1)
        return {"out": self.decode(z, y), "kl_units": kl_units, "log_ratio": log_ratio,
                "z": z, "mu": mu, "logvar": logvar}

    def prior_codes(self, n: int, temperature: float = 1.0,
                    generator: torch.Generator | None = None,
                    y: torch.Tensor | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return self.prior.sample(n, self.encoder, temperature, generator, device, y)


def _build_mlp(cfg: ModelConfig, size: int, classes: int) -> tuple[nn.Module, ...]:
    return (*mlp_encoder(size, cfg.hidden, cfg.latent_dim, classes),
            mlp_decoder(size, cfg.hidden, cfg.latent_dim + classes))


def _build_conv(cfg: ModelConfig, size: int, classes: int) -> tuple[nn.Module, ...]:
    return (*conv_encoder(size, cfg.channels, cfg.dense, cfg.latent_dim, classes),
            conv_decoder(size, cfg.channels, cfg.latent_dim + classes))


ONE_LAYER: dict[str, Callable[[ModelConfig, int, int], tuple[nn.Module, ...]]] = {
    "mlp": _build_mlp,
    "conv": _build_conv,
    "cvae": _build_conv,  # the conv family, always conditional
}

PRIORS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "normal": lambda cfg: StandardNormal(cfg.latent_dim),
    "mog": lambda cfg: MixturePrior(cfg.latent_dim, cfg.prior_components),
    "vamp": lambda cfg: VampPrior(cfg.latent_dim, cfg.prior_components, IMAGE_SIZE),
    "class": lambda cfg: ClassPrior(cfg.latent_dim, NUM_CLASSES),
}


def _build_one_layer(cfg: ModelConfig) -> VAE:
    size = PADDED_SIZE if cfg.pad32 else IMAGE_SIZE
    pad = (size - IMAGE_SIZE) // 2
    classes = NUM_CLASSES if cfg.is_conditional else 0
    body, head, decoder_net = ONE_LAYER[cfg.arch](cfg, size, classes)
    return VAE(GaussianEncoder(body, head, pad, classes),
               Decoder(decoder_net, build_likelihood(cfg), pad, classes), cfg.latent_dim,
               PRIORS[cfg.prior_name](cfg))


def _build_hierarchical(cfg: ModelConfig) -> HierarchicalVAE:
    return HierarchicalVAE(PIXELS, build_likelihood(cfg), cfg.layers, cfg.latent_dim,
                           cfg.width, cfg.blocks, NUM_CLASSES if cfg.is_conditional else 0)


MODELS: dict[str, Callable[[ModelConfig], LatentVariableModel]] = {
    **{arch: _build_one_layer for arch in ONE_LAYER},
    "hvae": _build_hierarchical,
}


def build_model(cfg: ModelConfig) -> LatentVariableModel:
    """Build an untrained model from its configuration."""
    return MODELS[cfg.arch](cfg)
