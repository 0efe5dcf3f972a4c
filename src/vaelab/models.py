"""The VAE, composed from an encoder network, a decoder network and a likelihood.

`MODELS` maps an architecture name to a builder of (encoder net, decoder net); `build_model`
turns a `ModelConfig` into a `VAE`. All user-facing images are (N, 1, 28, 28) in [0, 1];
a model that works at 32x32 pads its inputs and crops its outputs itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .data import IMAGE_SIZE
from .likelihoods import build_likelihood
from .nn import conv_decoder, conv_encoder, mlp_decoder, mlp_encoder

PADDED_SIZE = 32


def _build_mlp(cfg: ModelConfig, size: int) -> tuple[nn.Module, nn.Module]:
    return (mlp_encoder(size, cfg.hidden, cfg.latent_dim),
            mlp_decoder(size, cfg.hidden, cfg.latent_dim))


def _build_conv(cfg: ModelConfig, size: int) -> tuple[nn.Module, nn.Module]:
    return (conv_encoder(size, cfg.channels, cfg.dense, cfg.latent_dim),
            conv_decoder(size, cfg.channels, cfg.latent_dim))


MODELS: dict[str, Callable[[ModelConfig, int], tuple[nn.Module, nn.Module]]] = {
    "mlp": _build_mlp,
    "conv": _build_conv,
}


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mu, diag(exp(logvar))). Pads 28x28 inputs to the network's size."""

    def __init__(self, net: nn.Module, pad: int):
        super().__init__()
        self.net = net
        self.pad = pad

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 28, 28) in [0, 1] -> mu, logvar, each (B, D)."""
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        mu, logvar = self.net(x).float().chunk(2, dim=1)  # float32 even under bf16 autocast
        return mu, logvar

    encode = forward


class Decoder(nn.Module):
    """p(x|z): the decoder network plus its likelihood. Crops padded outputs to 28x28."""

    def __init__(self, net: nn.Module, likelihood: nn.Module, pad: int):
        super().__init__()
        self.net = net
        self.likelihood = likelihood
        self.pad = pad

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, 1, 28, 28) logits (Bernoulli) or means (Gaussian)."""
        out = self.net(z)
        if self.pad:
            out = out[..., self.pad:-self.pad, self.pad:-self.pad]
        return out

    decode = forward

    def images(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, 1, 28, 28) mean images in [0, 1]."""
        return self.likelihood.mean(self(z))


class VAE(nn.Module):
    """A variational autoencoder with a Gaussian encoder and a standard normal prior."""

    def __init__(self, encoder: GaussianEncoder, decoder: Decoder, latent_dim: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim

    @property
    def likelihood(self) -> nn.Module:
        return self.decoder.likelihood

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, 1, 28, 28) in [0, 1] -> (mu, logvar), each (N, latent_dim)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, latent_dim) -> logits (Bernoulli) or means (Gaussian), (N, 1, 28, 28)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor,
                noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One pass with the reparameterization trick (Kingma & Welling 2014, eq. 10).

        `noise` (B, latent_dim) is the standard normal draw; drawn here when not given.
        """
        mu, logvar = self.encode(x)
        if noise is None:
            noise = torch.randn_like(mu)
        z = mu + noise * torch.exp(0.5 * logvar)  # (B, D)
        return {"mu": mu, "logvar": logvar, "z": z, "out": self.decode(z)}

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw z ~ N(0, temperature^2 I) and return the decoded mean images (n, 1, 28, 28)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device) * temperature
        return self.decoder.images(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean of each image: (N, 1, 28, 28) -> (N, 1, 28, 28) in [0, 1]."""
        mu, _ = self.encode(x)
        return self.decoder.images(mu)


def build_model(cfg: ModelConfig) -> VAE:
    """Build an untrained VAE from its configuration."""
    size = PADDED_SIZE if cfg.pad32 else IMAGE_SIZE
    pad = (size - IMAGE_SIZE) // 2
    encoder_net, decoder_net = MODELS[cfg.arch](cfg, size)
    return VAE(GaussianEncoder(encoder_net, pad),
               Decoder(decoder_net, build_likelihood(cfg), pad), cfg.latent_dim)
