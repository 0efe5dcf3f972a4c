"""The models, composed from parts: encoder network, decoder network, likelihood and prior.

`MODELS` maps an architecture name to a builder; `build_model` turns a `ModelConfig` into a
model. User-facing images are (N, C, H, W) in [0, 1], `model.image_shape` = (C, H, W); a
model whose networks need other sides pads its inputs and crops its outputs itself.
Conditional models take class labels `y`, (N,) integers (or (N, Y) soft one-hot rows)
wherever they take images or codes.

See `generative.py` for the interface every model speaks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MNIST_SHAPE, ModelConfig
from .generative import LatentVariableModel, one_hot
from .hvae import HierarchicalVAE
from .likelihoods import LOG_2PI, build_likelihood
from .nn import Shape, conv_decoder, conv_encoder, mlp_decoder, mlp_encoder, padded_shape, padding
from .priors import ClassPrior, MixturePrior, StandardNormal, VampPrior, log_normal

PAD32_MULTIPLE = 32  # model.pad32: sides padded to a multiple of 32 (28 -> 32)
Padding = tuple[int, int, int, int]  # (left, right, top, bottom), as F.pad takes it


def _as_padding(pad: int | Padding) -> Padding:
    return (pad,) * 4 if isinstance(pad, int) else tuple(pad)


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mu, diag(exp(logvar))). Pads images to the network's size; a conditional
    encoder appends the one-hot label to the body's features. `pad`: one width for every
    side, or (left, right, top, bottom)."""

    def __init__(self, body: nn.Module, head: nn.Module, pad: int | Padding = 0,
                 num_classes: int = 0, image_shape: Shape = MNIST_SHAPE):
        super().__init__()
        self.body = body
        self.head = head
        self.padding = _as_padding(pad)
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)

    def forward(self, x: torch.Tensor,
                y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) in [0, 1] -> mu, logvar, each (B, D)."""
        if any(self.padding):
            x = F.pad(x, self.padding)
        h = self.body(x)
        if self.num_classes:
            h = torch.cat([h, one_hot(y, self.num_classes, h.dtype)], dim=1)
        mu, logvar = self.head(h).float().chunk(2, dim=1)  # float32 even under bf16 autocast
        return mu, logvar

    encode = forward


class Decoder(nn.Module):
    """p(x|z): the decoder network plus its likelihood. Crops padded outputs back to the
    image; a conditional decoder reads the one-hot label beside the code."""

    def __init__(self, net: nn.Module, likelihood: nn.Module, pad: int | Padding = 0,
                 num_classes: int = 0, image_shape: Shape = MNIST_SHAPE):
        super().__init__()
        self.net = net
        self.likelihood = likelihood
        self.padding = _as_padding(pad)
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, P, H, W) likelihood parameters: logits (Bernoulli), means
        (Gaussian), or the logistic mixture's P = out_channels(C) channels."""
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z.dtype)], dim=1)
        out = self.net(z)
        if any(self.padding):
            left, right, top, bottom = self.padding
            out = out[..., top:out.shape[-2] - bottom, left:out.shape[-1] - right]
        return out

    decode = forward

    def images(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, C, H, W) mean images in [0, 1]."""
        return self.likelihood.mean(self(z, y))


class VAE(LatentVariableModel):
    """A variational autoencoder with one stochastic layer: a Gaussian encoder, a decoder,
    and a prior (standard normal unless given). Its images have the decoder's shape."""

    def __init__(self, encoder: GaussianEncoder, decoder: Decoder, latent_dim: int,
                 prior: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent_dim = latent_dim
        self.num_classes = encoder.num_classes
        self.image_shape = decoder.image_shape
        self.prior = prior if prior is not None else StandardNormal(latent_dim)

    @property
    def likelihood(self) -> nn.Module:
        return self.decoder.likelihood

    def encode(self, x: torch.Tensor,
               y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, C, H, W) in [0, 1] -> (mu, logvar), each (N, latent_dim)."""
        return self.encoder(x, y)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (N, latent_dim) -> the likelihood's parameters (N, P, H, W): logits
        (Bernoulli) or means (Gaussian), P = C; see logistic.py for the mixture's."""
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


# --- builders ---------------------------------------------------------------------------

Networks = Callable[[ModelConfig, Shape, int, int], tuple[nn.Module, ...]]


def _build_mlp(cfg: ModelConfig, shape: Shape, classes: int,
               out_channels: int) -> tuple[nn.Module, ...]:
    return (*mlp_encoder(shape, cfg.hidden, cfg.latent_dim, classes),
            mlp_decoder(shape, cfg.hidden, cfg.latent_dim + classes, out_channels))


def _build_conv(cfg: ModelConfig, shape: Shape, classes: int,
                out_channels: int) -> tuple[nn.Module, ...]:
    return (*conv_encoder(shape, cfg.channels, cfg.dense, cfg.latent_dim, classes),
            conv_decoder(shape, cfg.channels, cfg.latent_dim + classes, out_channels))


@dataclass(frozen=True)
class OneLayerFamily:
    """How to build a one-layer family: its networks, for a working shape (C, H, W), the
    classes a conditional model appends and the decoder's output channels; and the number
    its networks need the image sides to be multiples of (they are padded up to it)."""

    networks: Networks
    side_multiple: Callable[[ModelConfig], int]


ONE_LAYER: dict[str, OneLayerFamily] = {
    "mlp": OneLayerFamily(_build_mlp, lambda cfg: 1),
    "conv": OneLayerFamily(_build_conv, lambda cfg: 2 ** len(cfg.channels)),  # stride 2 each
    "cvae": OneLayerFamily(_build_conv, lambda cfg: 2 ** len(cfg.channels)),  # always conditional
}

PRIORS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "normal": lambda cfg: StandardNormal(cfg.latent_dim),
    "mog": lambda cfg: MixturePrior(cfg.latent_dim, cfg.prior_components),
    "vamp": lambda cfg: VampPrior(cfg.latent_dim, cfg.prior_components, cfg.image_shape),
    "class": lambda cfg: ClassPrior(cfg.latent_dim, cfg.num_classes),
}


def _build_one_layer(cfg: ModelConfig) -> VAE:
    family = ONE_LAYER[cfg.arch]
    multiple = family.side_multiple(cfg)
    if cfg.pad32:
        multiple = max(multiple, PAD32_MULTIPLE)  # both powers of two: the larger is the lcm
    pad = padding(cfg.image_shape, multiple)
    classes = cfg.num_classes if cfg.is_conditional else 0
    likelihood = build_likelihood(cfg)
    out_channels = likelihood.out_channels(cfg.image_shape[0])
    body, head, decoder_net = family.networks(cfg, padded_shape(cfg.image_shape, pad),
                                              classes, out_channels)
    return VAE(GaussianEncoder(body, head, pad, classes, cfg.image_shape),
               Decoder(decoder_net, likelihood, pad, classes, cfg.image_shape),
               cfg.latent_dim, PRIORS[cfg.prior_name](cfg))


def _build_hierarchical(cfg: ModelConfig) -> HierarchicalVAE:
    return HierarchicalVAE(cfg.image_shape, build_likelihood(cfg), cfg.layers, cfg.latent_dim,
                           cfg.width, cfg.blocks, cfg.num_classes if cfg.is_conditional else 0)


MODELS: dict[str, Callable[[ModelConfig], LatentVariableModel]] = {
    **{arch: _build_one_layer for arch in ONE_LAYER},
    "hvae": _build_hierarchical,
}


def build_model(cfg: ModelConfig) -> LatentVariableModel:
    """Build an untrained model from its configuration."""
    return MODELS[cfg.arch](cfg)
