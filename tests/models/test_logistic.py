"""The discretized logistic mixture (PixelCNN++): a distribution over the 256 levels of each
channel, checked against sums over every value and against torch.distributions."""

import math

import pytest
import torch
from torch.distributions import AffineTransform, SigmoidTransform, TransformedDistribution, Uniform

from vaelab.models.logistic import LOG_SCALE_MIN, LogisticMixture

LEVELS = torch.arange(256) / 255  # every value a pixel channel can take, in [0, 1]


def random_params(channels: int, k: int, pixels: int, seed: int = 0) -> torch.Tensor:
    """(1, P, 1, pixels) parameters spread over what a decoder may give: means inside and
    beyond [-1, 1], scales from the narrowest allowed (log-scale -7) to wider than the
    range, coefficients of either sign, uneven mixture weights."""
    g = torch.Generator().manual_seed(seed)
    mixture = LogisticMixture(k)
    params = torch.empty(1, mixture.out_channels(channels), 1, pixels)
    params[:, :k] = 2 * torch.randn(1, k, 1, pixels, generator=g)  # logits
    n = 3 if channels == 3 else 2
    rest = params[:, k:].view(1, channels, n, k, 1, pixels)
    rest[:, :, 0] = 1.5 * torch.randn(1, channels, k, 1, pixels, generator=g)  # means
    rest[:, :, 1] = torch.empty(1, channels, k, 1, pixels).uniform_(-8, 1, generator=g)
    if n == 3:
        rest[:, :, 2] = torch.randn(1, channels, k, 1, pixels, generator=g)  # atanh(coeffs)
    return params


def logistic(loc: float, log_scale: float) -> TransformedDistribution:
    """The logistic distribution, in float64, as torch.distributions builds it."""
    return TransformedDistribution(
        Uniform(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)),
        [SigmoidTransform().inv, AffineTransform(loc, math.exp(log_scale))])


def bin_probabilities(dist: TransformedDistribution) -> torch.Tensor:
    """P(level k) for k = 0..255 in the [-1, 1] scale, by CDF differences; the bins of 0
    and 255 reach -inf and +inf."""
    v = 2 * LEVELS.double() - 1
    upper = torch.cat([dist.cdf(v[:-1] + 1 / 255), torch.ones(1, dtype=v.dtype)])
    lower = torch.cat([torch.zeros(1, dtype=v.dtype), dist.cdf(v[1:] - 1 / 255)])
    return upper - lower


def logistic_log_density(v: torch.Tensor, loc: float, log_scale: float) -> torch.Tensor:
    """log of the logistic density, exp(-z) / (s (1 + exp(-z))^2), z = (v - loc) / s."""
    z = (v - loc) / math.exp(log_scale)
    return -z - log_scale - 2 * torch.nn.functional.softplus(-z)


class TestNormalisation:
    def test_grayscale_sums_to_one_over_the_256_levels(self):
        """Every pixel's probabilities of the 256 values sum to 1, however narrow, wide or
        off-centre its components (the tiny-probability branch included)."""
        k, pixels = 10, 400
        params = random_params(1, k, pixels).expand(256, -1, -1, -1)
        x = LEVELS.reshape(256, 1, 1, 1).expand(256, 1, 1, pixels)
        log_p = LogisticMixture(k).pixel_log_prob(x, params)  # (256, 1, pixels)
        total = torch.logsumexp(log_p.double(), dim=0).exp()
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-4, rtol=0)

    @pytest.mark.parametrize("channel", [0, 1, 2])
    def test_colour_channels_sum_to_one_given_the_channels_before(self, channel):
        """p_k(x_c | x_<c) sums to 1 over the 256 values of x_c, for every component and
        every value of the channels before it (PixelCNN++ section 2.2's factorisation),
        and does not depend on the channels after it."""
        k, pixels = 4, 300
        mixture = LogisticMixture(k)
        params = random_params(3, k, pixels, seed=channel).expand(256, -1, -1, -1)
        g = torch.Generator().manual_seed(10 + channel)
        x = (torch.randint(0, 256, (1, 3, 1, pixels), generator=g) / 255).repeat(256, 1, 1, 1)
        x[:, channel] = LEVELS.reshape(256, 1, 1)
        log_p = mixture.channel_log_probs(x, params)[:, channel]  # (256, K, 1, pixels)
        total = torch.logsumexp(log_p.double(), dim=0).exp()
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-4, rtol=0)
        later = x.clone()
        later[:, channel + 1:] = torch.rand(later[:, channel + 1:].shape, generator=g)
        torch.testing.assert_close(mixture.channel_log_probs(later, params)[:, channel], log_p)

    @pytest.mark.slow  # 16.7M colours: about 10-20 s on two CPU cores
    def test_colour_sums_to_one_over_all_256_cubed_values(self):
        """The exact check: all 16.7M colours of one pixel, mixed over components whose
        channels are coupled, through the public per-pixel log-probability."""
        k = 3
        mixture = LogisticMixture(k)
        params = random_params(3, k, 1, seed=7)
        params[:, k:].view(3, 3, k)[:, 1] = torch.tensor([-3.0, -4.5, -6.0])  # log-scales
        gb = torch.cartesian_prod(LEVELS, LEVELS)  # (65536, 2): every (G, B)
        totals = []
        for r in LEVELS:
            x = torch.cat([r.expand(len(gb), 1), gb], dim=1).reshape(-1, 3, 1, 1)
            totals.append(torch.logsumexp(
                mixture.pixel_log_prob(x, params.expand(len(gb), -1, -1, -1)).double().flatten(),
                dim=0))
        total = torch.logsumexp(torch.stack(totals), dim=0).exp().item()
        assert total == pytest.approx(1.0, abs=1e-4)


class TestAgainstTorchDistributions:
    @pytest.mark.parametrize("loc, log_scale", [(0.1, -3.0), (-0.95, -2.0), (0.7, -6.5),
                                                (1.3, -1.0), (0.0, 0.5)])
    def test_one_grayscale_component(self, loc, log_scale):
        params = torch.tensor([0.0, loc, log_scale]).reshape(1, 3, 1, 1).expand(256, -1, -1, -1)
        got = LogisticMixture(1).log_prob(LEVELS.reshape(256, 1, 1, 1), params).double()
        p = bin_probabilities(logistic(loc, log_scale))
        exact = p > 1e-5  # the reference's own branch: CDF differences (float32: ~1e-7)
        torch.testing.assert_close(got[exact].exp(), p[exact], atol=1e-6, rtol=1e-4)
        # Below 1e-5 the reference takes the density at the bin's centre times its width.
        v = 2 * LEVELS.double() - 1
        tiny = ~exact & (LEVELS > 0) & (LEVELS < 1)
        density = logistic_log_density(v, loc, log_scale) + math.log(2 / 255)
        torch.testing.assert_close(got[tiny], density[tiny], atol=1e-3, rtol=1e-5)

    def test_one_colour_component_couples_its_channels(self):
        """G and B are centred on mu + coefficient x (the earlier channels' values)."""
        mu, log_s, coeff = [0.2, -0.3, 0.5], [-3.0, -2.5, -3.5], [0.4, -0.6, 0.3]
        per_channel = [[m, s, math.atanh(c)] for m, s, c in zip(mu, log_s, coeff)]
        params = torch.tensor([0.0, *sum(per_channel, [])]).reshape(1, 10, 1, 1)
        x = torch.tensor([140, 90, 170]).reshape(1, 3, 1, 1) / 255
        v = 2 * x.double().flatten() - 1
        alpha, beta, gamma = coeff  # G | R, B | R, B | G
        centres = [mu[0], mu[1] + alpha * v[0], mu[2] + beta * v[0] + gamma * v[1]]
        want = sum(bin_probabilities(logistic(float(c), s))[level].log()
                   for c, s, level in zip(centres, log_s, (140, 90, 170)))
        got = LogisticMixture(1).log_prob(x, params).double()
        torch.testing.assert_close(got, want.reshape(1), atol=1e-4, rtol=1e-4)


class TestGradientsAndPrecision:
    def test_gradients_are_finite_at_the_edges(self):
        k = 5
        params = random_params(3, k, 64, seed=3)
        params[:, k:].view(3, 3, k, 64)[:, 1] = LOG_SCALE_MIN - 3  # below the clamp, too
        params[:, k:].view(3, 3, k, 64)[:, 0, :, ::2] *= 5  # means far beyond the range
        params.requires_grad_(True)
        x = torch.zeros(1, 3, 1, 64)
        x[..., 1::2] = 1.0  # level 0 at even pixels, level 255 at odd ones
        x[:, 1, :, ::4] = 1.0  # and mixed colours
        log_p = LogisticMixture(k).log_prob(x, params)
        assert torch.isfinite(log_p).all()
        log_p.sum().backward()
        assert torch.isfinite(params.grad).all()

    def test_float32_under_bf16_autocast(self):
        params = random_params(1, 3, 16).bfloat16()
        x = torch.randint(0, 256, (1, 1, 1, 16)) / 255
        with torch.autocast("cpu", dtype=torch.bfloat16):
            log_p = LogisticMixture(3).log_prob(x, params)
        assert log_p.dtype == torch.float32 and log_p.shape == (1,)


class TestMeanAndSamples:
    def test_layout_and_mean(self):
        mixture = LogisticMixture(2)
        assert mixture.out_channels(1) == 6 and mixture.out_channels(3) == 20
        # Two grayscale components, weights 1/4 and 3/4, means 0.5 and -3 (clamped to -1).
        params = torch.tensor([0.0, math.log(3.0), 0.5, -3.0, -4.0, -4.0]).reshape(1, 6, 1, 1)
        want = 0.25 * (0.5 + 1) / 2 + 0.75 * 0.0
        assert mixture.mean(params).item() == pytest.approx(want)

    @pytest.mark.parametrize("channels", [1, 3])
    def test_samples_follow_the_probabilities(self, channels):
        """A pixel's draws are 8-bit values whose frequencies match the model's
        probabilities: the marginal of the first channel, and in colour that of G among
        the draws with the most frequent R (G's coupling to the drawn R)."""
        k, n = 3, 200_000
        params = random_params(channels, k, 1, seed=5)
        params[:, k:].view(channels, -1, k)[:, 1] = -2.5  # each spread over ~20 levels
        mixture = LogisticMixture(k)
        drawn = mixture.sample(params.expand(n, -1, -1, -1), torch.Generator().manual_seed(0))
        assert torch.equal(drawn, torch.round(drawn * 255) / 255)
        levels = (drawn[:, :, 0, 0] * 255).round().long()  # (n, C)
        log_pi = params[0, :k, 0, 0].log_softmax(0)

        def channel_terms(fixed: torch.Tensor, channel: int) -> torch.Tensor:
            """log pi_k + log p_k(channel = each level | the fixed levels before): (256, K)."""
            x = (fixed / 255).reshape(1, channels, 1, 1).repeat(256, 1, 1, 1)
            x[:, channel] = LEVELS.reshape(256, 1, 1)
            terms = mixture.channel_log_probs(x, params.expand(256, -1, -1, -1))
            return terms[:, :channel + 1, :, 0, 0].sum(1) + log_pi

        def assert_frequencies(values: torch.Tensor, probabilities: torch.Tensor) -> None:
            m = len(values)
            freq = torch.bincount(values, minlength=256) / m
            stderr = (probabilities * (1 - probabilities) / m).sqrt()
            assert ((freq - probabilities).abs() <= 5 * stderr + 1e-4).all()

        first = channel_terms(torch.zeros(channels), 0).logsumexp(1).exp()  # (256,)
        assert_frequencies(levels[:, 0], first)
        if channels == 3:
            r = levels[:, 0].mode().values
            given = torch.tensor([int(r), 0, 0])
            joint = channel_terms(given, 1).logsumexp(1)  # log p(R = r, G = g) over g
            assert_frequencies(levels[levels[:, 0] == r, 1], (joint - joint.logsumexp(0)).exp())
