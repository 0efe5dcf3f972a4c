"""Encoder and decoder networks, for images of any shape (C, H, W).

An encoder is a body, (B, C, H, W) -> (B, F) features, and a head, (B, F + Y) ->
(B, 2 * latent_dim), the Gaussian posterior's mean and log-variance side by side; Y is the
number of classes a conditional model appends (0 otherwise). Decoders map
(B, latent_dim + Y) -> (B, P, H, W), where P is what the likelihood asks for (C logits or
means; more for a logistic mixture). (C, H, W) here is the working shape: the image's,
or the padded one when the network needs sides divisible by some number (`padding`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

Shape = tuple[int, int, int]  # (C, H, W)


def padding(image_shape: Shape, multiple: int) -> tuple[int, int, int, int]:
    """Zero padding (left, right, top, bottom), as `F.pad` takes it, that brings each side
    up to the next multiple of `multiple`; an odd excess goes to the right and bottom."""
    _, h, w = image_shape
    extra_h, extra_w = -h % multiple, -w % multiple
    return (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)


def padded_shape(image_shape: Shape, pad: tuple[int, int, int, int]) -> Shape:
    c, h, w = image_shape
    left, right, top, bottom = pad
    return (c, h + top + bottom, w + left + right)


def _dense_stack(widths: Sequence[int]) -> list[nn.Module]:
    """Linear layers between consecutive widths, with ReLU after all but the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return layers


def mlp_encoder(shape: Shape, hidden: Sequence[int], latent_dim: int,
                classes: int = 0) -> tuple[nn.Module, nn.Module]:
    """pytorch/examples' VAE encoder when shape=(1, 28, 28), hidden=(400,), latent_dim=20:
    784-400-(20, 20)."""
    c, h, w = shape
    return nn.Flatten(), nn.Sequential(*_dense_stack([c * h * w + classes, *hidden,
                                                      2 * latent_dim]))


def mlp_decoder(shape: Shape, hidden: Sequence[int], in_dim: int,
                out_channels: int) -> nn.Sequential:
    """The mirror image of `mlp_encoder`: code -> reversed hidden widths -> P*H*W outputs."""
    _, h, w = shape
    widths = [in_dim, *reversed(hidden), out_channels * h * w]
    return nn.Sequential(*_dense_stack(widths), nn.Unflatten(1, (out_channels, h, w)))


def _conv_grid(shape: Shape, channels: Sequence[int]) -> tuple[int, int]:
    """(H, W) of the feature map after len(channels) stride-2 convolutions."""
    _, h, w = shape
    factor = 2 ** len(channels)
    assert h % factor == 0 and w % factor == 0, f"pad {h}x{w} to a multiple of {factor}"
    return h // factor, w // factor


def conv_encoder(shape: Shape, channels: Sequence[int], dense: int, latent_dim: int,
                 classes: int = 0) -> tuple[nn.Module, nn.Module]:
    """Stride-2 3x3 convolutions, then an optional dense layer, then the latent heads.

    shape=(1, 28, 28), channels=(32, 64), dense=16 is the encoder of the Keras VAE example
    (28x28 -> 14x14x32 -> 7x7x64 -> 16).
    """
    layers: list[nn.Module] = []
    c_in = shape[0]
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1), nn.ReLU()]
        c_in = c_out
    grid_h, grid_w = _conv_grid(shape, channels)
    flat = c_in * grid_h * grid_w + classes
    head = [flat, dense, 2 * latent_dim] if dense else [flat, 2 * latent_dim]
    return nn.Sequential(*layers, nn.Flatten()), nn.Sequential(*_dense_stack(head))


def conv_decoder(shape: Shape, channels: Sequence[int], in_dim: int,
                 out_channels: int) -> nn.Sequential:
    """A dense layer to the smallest feature map, then stride-2 transposed convolutions.

    shape=(1, 28, 28), channels=(32, 64), out_channels=1 is the decoder of the Keras VAE
    example (code -> 7x7x64 -> 14x14x64 -> 28x28x32 -> 28x28x1).
    """
    grid_h, grid_w = _conv_grid(shape, channels)
    c_in = channels[-1]
    layers: list[nn.Module] = [nn.Linear(in_dim, c_in * grid_h * grid_w), nn.ReLU(),
                               nn.Unflatten(1, (c_in, grid_h, grid_w))]
    for c_out in reversed(channels):
        layers += [nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1,
                                      output_padding=1), nn.ReLU()]
        c_in = c_out
    layers.append(nn.ConvTranspose2d(c_in, out_channels, kernel_size=3, stride=1, padding=1))
    return nn.Sequential(*layers)
