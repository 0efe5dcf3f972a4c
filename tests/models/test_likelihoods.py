import math

import pytest
import torch
from torch import nn

from vaelab.models.likelihoods import Bernoulli, Gaussian, kl_standard_normal
from vaelab.models.vae import VAE, Decoder, GaussianEncoder
from vaelab.training.objectives import beta_at, negative_elbo


class TestKL:
    def test_analytic_kl_matches_monte_carlo(self):
        g = torch.Generator().manual_seed(0)
        mu = torch.randn(3, 4, generator=g)
        logvar = torch.randn(3, 4, generator=g) * 0.5
        analytic = kl_standard_normal(mu, logvar).sum(1)  # (3,)
        # KL = E_q[log q(z) - log p(z)], estimated with 400k samples per row.
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        p = torch.distributions.Normal(0.0, 1.0)
        z = q.sample((400_000,))
        monte_carlo = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
        torch.testing.assert_close(analytic, monte_carlo, atol=0.02, rtol=0.01)

    def test_kl_is_zero_at_the_prior(self):
        assert kl_standard_normal(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max() == 0


class TestLikelihoods:
    def test_bernoulli_hand_computed(self):
        # Two pixels: x = (1, 0), logits = (0, log 3) -> p = (1/2, 3/4).
        # log p(x) = log(1/2) + log(1 - 3/4) = -log 2 - log 4 = -log 8.
        x = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
        logits = torch.tensor([0.0, math.log(3)]).reshape(1, 1, 1, 2)
        torch.testing.assert_close(Bernoulli().log_prob(x, logits),
                                   torch.tensor([-math.log(8)]))

    def test_bernoulli_sums_over_colour_channels(self):
        x = (torch.rand(3, 3, 8, 6) < 0.5).float()
        logits = torch.randn(3, 3, 8, 6)
        want = torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
        torch.testing.assert_close(Bernoulli().log_prob(x, logits), want)
        assert Bernoulli().out_channels(3) == Gaussian(0.1, False).out_channels(3) == 3

    def test_bernoulli_is_stable_for_large_logits(self):
        x = torch.ones(1, 1, 1, 1)
        assert torch.isfinite(Bernoulli().log_prob(x, torch.full_like(x, -200.0))).all()

    @pytest.mark.parametrize("shape", [(1, 28, 28), (3, 48, 40)])
    @pytest.mark.parametrize("learned", [False, True])
    def test_gaussian_matches_torch_normal(self, learned, shape):
        x, mean = torch.rand(4, *shape), torch.rand(4, *shape)
        expected = torch.distributions.Normal(mean, 0.2).log_prob(x).flatten(1).sum(1)
        torch.testing.assert_close(Gaussian(0.2, learned).log_prob(x, mean), expected)

    def test_learned_std_is_a_parameter(self):
        assert len(list(Gaussian(0.1, learned=True).parameters())) == 1
        assert len(list(Gaussian(0.1, learned=False).parameters())) == 0


class Fixed(nn.Module):
    """A network that ignores its input and returns a fixed tensor for each row."""

    def __init__(self, value):
        super().__init__()
        self.value = value
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.value.expand(len(x), *self.value.shape) + 0 * self.weight


def fixed_vae(mu, logvar, logits) -> VAE:
    encoder = GaussianEncoder(nn.Identity(), Fixed(torch.cat([mu, logvar])), pad=0)
    return VAE(encoder, Decoder(Fixed(logits), Bernoulli(), pad=0), latent_dim=len(mu))


class TestObjective:
    def test_units_hand_computed(self):
        # logvar = -40 makes z = mu exactly in float32; the decoder ignores z.
        mu, logvar = torch.tensor([1.0, -2.0]), torch.tensor([-40.0, -40.0])
        logits = torch.zeros(1, 28, 28)  # p = 1/2 for every pixel
        model = fixed_vae(mu, logvar, logits)
        x = torch.ones(8, 1, 28, 28)
        out = negative_elbo(model, x)
        recon = 784 * math.log(2)  # nats per image: summed over pixels
        kl = 0.5 * ((1 + math.exp(-40) - 1 + 40) + (4 + math.exp(-40) - 1 + 40))
        torch.testing.assert_close(out["recon"], torch.tensor(recon))
        torch.testing.assert_close(out["kl"], torch.tensor(kl))
        torch.testing.assert_close(out["loss"], torch.tensor(recon + kl))
        # Per image, not per batch: a batch twice the size gives the same numbers.
        double = negative_elbo(model, torch.ones(16, 1, 28, 28))
        torch.testing.assert_close(double["loss"], out["loss"])
        # beta weights the KL only.
        torch.testing.assert_close(negative_elbo(model, x, beta=0.5)["loss"],
                                   torch.tensor(recon + 0.5 * kl))

    def test_free_bits_floor_each_dimension(self):
        mu, logvar = torch.tensor([0.1, 3.0]), torch.tensor([0.0, 0.0])
        model = fixed_vae(mu, logvar, torch.zeros(1, 28, 28))
        x = torch.ones(2, 1, 28, 28)
        kl_dims = [0.5 * 0.1 ** 2, 0.5 * 9.0]  # 0.005 and 4.5 nats
        out = negative_elbo(model, x, free_bits=1.0)
        # Loss counts max(1, 0.005) + max(1, 4.5); the reported KL stays the true one.
        torch.testing.assert_close(out["kl"], torch.tensor(sum(kl_dims)))
        torch.testing.assert_close(out["loss"] - out["recon"], torch.tensor(1.0 + 4.5))

    def test_warmup(self):
        assert beta_at(0, 100, 1.0, 2.0) == 0.0
        assert beta_at(100, 100, 1.0, 2.0) == 0.5
        assert beta_at(500, 100, 1.0, 2.0) == 1.0
        assert beta_at(0, 100, 0.7, 0.0) == 0.7
