"""Encoder and decoder networks. An encoder is a body, (B, 1, S, S) -> (B, F) features, and
a head, (B, F + C) -> (B, 2 * latent_dim), the Gaussian posterior's mean and log-variance
side by side; C is the number of classes a conditional model appends (0 otherwise).
Decoders map (B, latent_dim + C) -> (B, 1, S, S) logits or means. S is the working image
size (28, or 32 when padded)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError


def _dense_stack(widths: Sequence[int]) -> list[nn.Module]:
    """Linear layers between consecutive widths, with ReLU after all but the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return layers


def mlp_encoder(size: int, hidden: Sequence[int], latent_dim: int,
                classes: int = 0) -> tuple[nn.Module, nn.Module]:
    """pytorch/examples' VAE encoder when hidden=(400,), latent_dim=20: 784-400-(20, 20)."""
    return nn.Flatten(), nn.Sequential(*_dense_stack([size * size + classes, *hidden,
                                                      2 * latent_dim]))


def mlp_decoder(size: int, hidden: Sequence[int], in_dim: int) -> nn.Sequential:
    """The mirror image of `mlp_encoder`: code -> reversed hidden widths -> S*S pixels."""
    widths = [in_dim, *reversed(hidden), size * size]
    return nn.Sequential(*_dense_stack(widths), nn.Unflatten(1, (1, size, size)))


def _conv_grid(size: int, channels: Sequence[int]) -> int:
    """Side of the feature map after len(channels) stride-2 convolutions."""
    factor = 2 ** len(channels)
    if size % factor:
        raise ConfigError(f"a conv model with {len(channels)} stride-2 layers needs an image "
                          f"side divisible by {factor}, but it is {size}: use fewer "
                          f"model.channels, or pad to 32x32 (--pad32)")
    return size // factor


def conv_encoder(size: int, channels: Sequence[int], dense: int, latent_dim: int,
                 classes: int = 0) -> tuple[nn.Module, nn.Module]:
    """Stride-2 3x3 convolutions, then an optional dense layer, then the latent heads.

    channels=(32, 64), dense=16 is the encoder of the Keras VAE example
    (28x28 -> 14x14x32 -> 7x7x64 -> 16).
    """
    layers: list[nn.Module] = []
    c_in = 1
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1), nn.ReLU()]
        c_in = c_out
    grid = _conv_grid(size, channels)
    flat = c_in * grid * grid + classes
    head = [flat, dense, 2 * latent_dim] if dense else [flat, 2 * latent_dim]
    return nn.Sequential(*layers, nn.Flatten()), nn.Sequential(*_dense_stack(head))


def conv_decoder(size: int, channels: Sequence[int], in_dim: int) -> nn.Sequential:
    """A dense layer to the smallest feature map, then stride-2 transposed convolutions.

    channels=(32, 64) is the decoder of the Keras VAE example
    (code -> 7x7x64 -> 14x14x64 -> 28x28x32 -> 28x28x1).
    """
    grid = _conv_grid(size, channels)
    c_in = channels[-1]
    layers: list[nn.Module] = [nn.Linear(in_dim, c_in * grid * grid), nn.ReLU(),
                               nn.Unflatten(1, (c_in, grid, grid))]
    for c_out in reversed(channels):
        layers += [nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1,
                                      output_padding=1), nn.ReLU()]
        c_in = c_out
    layers.append(nn.ConvTranspose2d(c_in, 1, kernel_size=3, stride=1, padding=1))
    return nn.Sequential(*layers)
