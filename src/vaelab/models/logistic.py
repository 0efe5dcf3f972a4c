"""The discretized logistic mixture likelihood of PixelCNN++ (Salimans et al. 2017, eq. 2 and
section 2.2), as NVAE (Vahdat & Kautz 2020) uses it for 8-bit images.

Pixels x = k / 255 are read in PixelCNN++'s scale, v = 2x - 1 in [-1, 1], where bin k is
[v - 1/255, v + 1/255]; the bins of 0 and 255 reach out to -inf and +inf. Each pixel has K
logistic components, their weights pi_k shared by its channels. In colour, channel c of
component k is centred on a linear function of the channels before it (section 2.2):
mu_G + alpha x_R and mu_B + beta x_R + gamma x_G, so that at every pixel
p(x) = sum_k pi_k p_k(x_R) p_k(x_G | x_R) p_k(x_B | x_R, x_G).

Decoder output layout, (B, P, H, W) for C image channels (1 or 3) and K components:

    [0, K)   mixture logits, one per component
    [K, P)   viewed as (C, n, K): for image channel c,
             [c, 0] the means mu_{c,k}, in the [-1, 1] scale
             [c, 1] the log-scales log s_{c,k}, clamped below at LOG_SCALE_MIN
             [c, 2] colour only: the coupling coefficients, squashed by tanh,
                    alpha_k (G | R) at c = 0, beta_k (B | R) at c = 1, gamma_k (B | G) at c = 2

so P = 3K in grayscale (n = 2) and P = 10K in colour (n = 3, PixelCNN++'s ten numbers per
component): PixelCNN++'s channel-last layout, moved to the channel axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 255  # 8-bit pixels: x = k / 255, k = 0..255
HALF_BIN = 1.0 / LEVELS  # half a bin's width in the [-1, 1] scale, where bins are 2/255 wide
LOG_SCALE_MIN = -7.0  # PixelCNN++ and NVAE: no logistic narrower than about 1/9 of a bin
TINY_BIN = 1e-5  # below this bin probability the reference switches to density x width
LOG_BIN_WIDTH = math.log(2.0 / LEVELS)  # PixelCNN++'s "- log(127.5)"


class LogisticMixture(nn.Module):
    """p(x|z) = prod over pixels of a mixture of K discretized logistics (the module
    docstring gives the decoder output layout). Targets are 8-bit images k / 255 in [0, 1],
    grayscale or colour; other values are read as the nearest level."""

    def __init__(self, components: int):
        super().__init__()
        self.components = components

    def out_channels(self, image_channels: int) -> int:
        """Decoder output channels for C image channels: 3K (C = 1) or 10K (C = 3)."""
        return self.components * (1 + image_channels * _fields(image_channels))

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) targets in [0, 1] and (B, P, H, W) parameters -> (B,) float32 nats,
        summed over pixels and channels."""
        return self.pixel_log_prob(x, params).flatten(1).sum(1)

    def pixel_log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x) of every pixel, its channels together: (B, H, W) float32 nats."""
        logits, means, log_scales, coeffs = self._split(params, x.shape[1])
        per_channel = _channel_log_probs(x, means, log_scales, coeffs)  # (B, C, K, H, W)
        joint = per_channel.sum(1) + logits.log_softmax(1)  # (B, K, H, W)
        return torch.logsumexp(joint, dim=1)

    def channel_log_probs(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p_k(x_c | x_<c) of every channel c under every component k: (B, C, K, H, W)
        float32 nats. Summed over c and mixed over k, they give `pixel_log_prob`."""
        _, means, log_scales, coeffs = self._split(params, x.shape[1])
        return _channel_log_probs(x, means, log_scales, coeffs)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The mixture of the components' means, each clamped to [-1, 1] (in colour, with the
        coupling applied to the clamped means of the channels before): (B, C, H, W) in
        [0, 1]. Clamping stands in for the edge bins' mass: exact as the scales go to zero,
        an approximation of the discretized mean otherwise."""
        logits, means, _, coeffs = self._split(params, _channels_of(params, self.components))
        means = _coupled(means, coeffs, lambda m: m.clamp(-1, 1))  # (B, C, K, H, W)
        weights = logits.softmax(1).unsqueeze(1)  # (B, 1, K, H, W)
        return ((weights * means).sum(2) + 1) / 2

    def sample(self, params: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw per pixel, (B, C, H, W) values k / 255: a component by its weight, then
        each channel's logistic given the drawn channels before it. The coupling reads the
        drawn (quantized) values, so draws follow `log_prob` exactly; PixelCNN++'s sampler
        couples the unquantized ones."""
        logits, means, log_scales, coeffs = self._split(
            params, _channels_of(params, self.components))
        gumbel = -torch.log(-torch.log(_uniform(logits, generator)))  # Gumbel-max choice
        chosen = F.one_hot((logits + gumbel).argmax(1), self.components)  # (B, H, W, K)
        chosen = chosen.permute(0, 3, 1, 2).unsqueeze(1).to(means.dtype)  # (B, 1, K, H, W)

        def pick(t: torch.Tensor) -> torch.Tensor:
            return (t * chosen).sum(2)  # (B, C, H, W): the chosen component's values

        mu = pick(means)
        u = _uniform(mu, generator)
        draw = mu + torch.exp(pick(log_scales)) * (torch.log(u) - torch.log1p(-u))
        v = _coupled(draw, pick(coeffs) if coeffs is not None else None, _quantize)
        return torch.round((v + 1) / 2 * LEVELS) / LEVELS

    def _split(self, params: torch.Tensor, image_channels: int):
        """(B, P, H, W) -> logits (B, K, H, W) and means, log-scales, coefficients (None in
        grayscale), each (B, C, K, H, W); all float32, also under bf16 autocast."""
        params = params.float()
        b, p, h, w = params.shape
        k, n = self.components, _fields(image_channels)
        assert p == self.out_channels(image_channels), (p, image_channels, k)
        rest = params[:, k:].reshape(b, image_channels, n, k, h, w)
        coeffs = torch.tanh(rest[:, :, 2]) if n == 3 else None
        return params[:, :k], rest[:, :, 0], rest[:, :, 1].clamp(min=LOG_SCALE_MIN), coeffs


def _channel_log_probs(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor,
                       coeffs: torch.Tensor | None) -> torch.Tensor:
    """PixelCNN++'s `discretized_mix_logistic_loss`, term by term (eq. 2): the probability
    of the bin, sigma((v + 1/255 - mu) / s) - sigma((v - 1/255 - mu) / s); the edge bins
    open to -inf (k = 0) and +inf (k = 255); and where the difference is below 1e-5
    (float32 loses it), the density at v times the bin width. (B, C, K, H, W) nats."""
    level = torch.round(x.float() * LEVELS)  # (B, C, H, W) in 0..255
    v = (2.0 * level / LEVELS - 1.0).unsqueeze(2)  # (B, C, 1, H, W) in [-1, 1]
    if coeffs is not None:  # section 2.2: each channel's mean moves with the channels before
        means = torch.stack([means[:, 0],
                             means[:, 1] + coeffs[:, 0] * v[:, 0],
                             means[:, 2] + coeffs[:, 1] * v[:, 0] + coeffs[:, 2] * v[:, 1]],
                            dim=1)
    centred = v - means
    inv_scale = torch.exp(-log_scales)
    plus_in = inv_scale * (centred + HALF_BIN)
    min_in = inv_scale * (centred - HALF_BIN)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigma(plus_in): the bin of 0
    log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 - sigma(min_in)): the bin of 255
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_scale * centred
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)  # log density at v
    log_inner = torch.where(cdf_delta > TINY_BIN, torch.log(cdf_delta.clamp(min=1e-12)),
                            log_pdf_mid + LOG_BIN_WIDTH)
    level = level.unsqueeze(2)
    return torch.where(level == 0, log_cdf_plus,
                       torch.where(level == LEVELS, log_one_minus_cdf_min, log_inner))


def _fields(image_channels: int) -> int:
    """Numbers per channel and component: a mean and a log-scale, and in colour a coefficient."""
    if image_channels not in (1, 3):
        raise ValueError(f"the logistic mixture is for 1 or 3 channels, not {image_channels}")
    return 3 if image_channels == 3 else 2


def _channels_of(params: torch.Tensor, components: int) -> int:
    """The image channels a parameter tensor is laid out for: 3K -> 1, 10K -> 3."""
    layouts = {3 * components: 1, 10 * components: 3}
    if params.shape[1] not in layouts:
        raise ValueError(f"{params.shape[1]} parameter channels fit no image of a "
                         f"{components}-component logistic mixture (3K or 10K)")
    return layouts[params.shape[1]]


def _uniform(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform draws in (0, 1) of `like`'s shape, kept from 0 and 1 so that logs stay finite."""
    u = torch.rand(like.shape, generator=generator, device=like.device)
    return u.clamp(1e-6, 1 - 1e-6)


def _quantize(v: torch.Tensor) -> torch.Tensor:
    """Values in the [-1, 1] scale -> the centre of their bin, 2k/255 - 1."""
    return 2 * torch.round((v.clamp(-1, 1) + 1) / 2 * LEVELS) / LEVELS - 1


def _coupled(values: torch.Tensor, coeffs: torch.Tensor | None,
             finish: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """PixelCNN++'s colour coupling along dim 1, each channel `finish`ed (clamped or
    quantized) before the next reads it: R, G + alpha R, B + beta R + gamma G."""
    if coeffs is None:
        return finish(values)
    r, g, b = values.unbind(1)
    alpha, beta, gamma = coeffs.unbind(1)
    r = finish(r)
    g = finish(g + alpha * r)
    b = finish(b + beta * r + gamma * g)
    return torch.stack([r, g, b], dim=1)
