"""The IWAE and DReG objectives, the learned priors and the hierarchical VAE, checked
against numbers computed another way."""

import math

import pytest
import torch

import vaelab
from vaelab.config import Config, ModelConfig
from vaelab.errors import ConfigError
from vaelab.models.iwae import iwae_bound
from vaelab.models.priors import MixturePrior, VampPrior
from vaelab.models.vae import build_model
from vaelab.training.objectives import negative_elbo, negative_iwae

HVAE = ModelConfig(arch="hvae", layers=3, latent_dim=4, width=32, blocks=1)
ONE_LAYER = [ModelConfig(arch="mlp", hidden=(32,), latent_dim=3),
             ModelConfig(arch="mlp", hidden=(32,), latent_dim=3, prior="mog",
                         prior_components=5),
             ModelConfig(arch="mlp", hidden=(32,), latent_dim=3, prior="vamp",
                         prior_components=7)]
ALL = [*ONE_LAYER, HVAE, ModelConfig(arch="cvae", channels=(8, 16), latent_dim=3),
       ModelConfig(arch="hvae", layers=2, latent_dim=3, width=16, conditional=True)]


def name(cfg: ModelConfig) -> str:
    return f"{cfg.arch}-{cfg.prior_name}{'-cond' if cfg.is_conditional else ''}"


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 28, 28, generator=g) < 0.3).float(), torch.arange(n) % 10


def labels_of(model, y):
    return y if model.conditional else None


def perturb(model, seed=1):
    """Random nonzero weights everywhere (the hvae starts with posterior = prior)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("cfg", ALL, ids=name)
class TestEveryModel:
    def test_shapes_and_interface(self, cfg):
        model = perturb(build_model(cfg))
        x, y = batch()
        y = labels_of(model, y)
        mu, logvar = model.encode(x, y)
        assert mu.shape == logvar.shape == (6, model.latent_dim)
        assert model.decode(mu, y).shape == (6, 1, 28, 28)
        images = model.sample(5, label=3 if model.conditional else None)
        assert images.shape == (5, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
        out = model(x, y=y)
        assert out["log_ratio"].shape == (6,) and out["kl_units"].shape[0] == 6

    def test_iwae_with_one_sample_is_the_elbo(self, cfg):
        """L_1 = E_q[log p(x|z) + log p(z) - log q(z|x)]: with the same noise it equals the
        one-sample ELBO with the Monte-Carlo KL, for every model."""
        model = perturb(build_model(cfg))
        x, y = batch()
        y = labels_of(model, y)
        noise = torch.randn(6, 1, model.latent_dim, generator=torch.Generator().manual_seed(3))
        iwae = negative_iwae(model, x, k=1, noise=noise, y=y)
        out = model(x, noise[:, 0], y)
        log_px = model.likelihood.log_prob(x, out["out"])
        torch.testing.assert_close(iwae["loss"], -(log_px + out["log_ratio"]).mean())

    def test_analytic_kl_is_the_mean_of_the_sampled_one(self, cfg):
        """E_q[log q(z|x) - log p(z)] = KL: the KL the ELBO uses (analytic where it can be)
        agrees with the Monte-Carlo average of the sampled log ratio."""
        model = perturb(build_model(cfg))
        x, y = batch(2)
        y = labels_of(model, y)
        n = 20_000
        xs, ys = x.repeat_interleave(n, 0), None if y is None else y.repeat_interleave(n, 0)
        torch.manual_seed(0)
        with torch.no_grad():
            out = model(xs, y=ys)
        kl = out["kl_units"].sum(1).reshape(2, n).mean(1)
        mc = -out["log_ratio"].reshape(2, n)
        stderr = mc.std(1) / math.sqrt(n)
        assert ((kl - mc.mean(1)).abs() < 4 * stderr + 1e-3).all(), (kl, mc.mean(1), stderr)


class TestIWAE:
    def test_bound_rises_with_k_in_training_and_evaluation(self):
        torch.manual_seed(0)
        model = perturb(build_model(HVAE)).eval()
        x, _ = batch(4)
        with torch.no_grad():
            values = [-negative_iwae(model, x.repeat(50, 1, 1, 1), k)["loss"].item()
                      for k in (1, 5, 50)]
        assert values[0] < values[1] < values[2]
        evaluated = iwae_bound(model, x.repeat(50, 1, 1, 1), 50,
                               torch.Generator().manual_seed(0)).mean().item()
        assert evaluated == pytest.approx(values[2], abs=0.5)

    def test_dreg_keeps_the_value_and_the_decoder_gradient(self):
        """DReG changes only the inference network's gradient (Tucker et al. 2019)."""
        cfg = ONE_LAYER[0]
        x, _ = batch()
        noise = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(2))
        grads = {}
        for dreg in (False, True):
            torch.manual_seed(0)
            model = perturb(build_model(cfg))
            out = negative_iwae(model, x, 5, noise=noise, dreg=dreg)
            out["loss"].backward()
            grads[dreg] = (out["loss"].item(),
                           [p.grad.clone() for p in model.decoder.parameters()],
                           [p.grad.clone() for p in model.encoder.parameters()])
        assert grads[True][0] == pytest.approx(grads[False][0], rel=1e-6)
        for a, b in zip(grads[True][1], grads[False][1]):  # log q is computed another way
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        assert any(not torch.allclose(a, b) for a, b in zip(grads[True][2], grads[False][2]))

    def test_dreg_encoder_gradient_matches_its_formula(self):
        """grad_phi = -sum_k w~_k^2 (d log w_k / d z_k) (d z_k / d phi), per image averaged,
        with log q's parameters held fixed (Tucker et al. 2019, eq. 8)."""
        torch.manual_seed(0)
        model = perturb(build_model(ONE_LAYER[0]))
        x, _ = batch(3)
        k = 4
        noise = torch.randn(3, k, 3, generator=torch.Generator().manual_seed(5))
        negative_iwae(model, x, k, noise=noise, dreg=True)["loss"].backward()
        got = [p.grad.clone() for p in model.encoder.parameters()]
        model.zero_grad()
        # The formula, by hand: z as a leaf to get d log w / dz, then chain to phi.
        mu, logvar = model.encode(x)
        z = (mu[:, None] + noise * torch.exp(0.5 * logvar)[:, None])  # (B, K, D)
        z_leaf = z.detach().requires_grad_(True)
        flat = z_leaf.reshape(3 * k, 3)
        log_px = model.likelihood.log_prob(x.repeat_interleave(k, 0), model.decode(flat))
        log_q = -0.5 * (math.log(2 * math.pi) + logvar.detach()[:, None]
                        + (z_leaf - mu.detach()[:, None]).square()
                        / logvar.detach().exp()[:, None]).sum(-1)
        log_w = log_px.reshape(3, k) + model.prior.log_prob(flat).reshape(3, k) - log_q
        dlogw_dz, = torch.autograd.grad(log_w.sum(), z_leaf)
        w = torch.softmax(log_w.detach(), 1)
        (z * (-(w ** 2)[..., None] * dlogw_dz / 3)).sum().backward()
        want = [p.grad for p in model.encoder.parameters()]
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)  # float32 roundoff

    def test_config_rules(self):
        with pytest.raises(ConfigError, match="iwae"):
            Config().replace({"objective.k": 5})
        with pytest.raises(ConfigError, match="free bits"):
            Config().replace({"objective.kind": "iwae", "objective.free_bits": 0.5})
        with pytest.raises(ConfigError, match="one-layer"):
            Config().replace({"objective.kind": "iwae-dreg", "model.arch": "hvae"})
        with pytest.raises(ConfigError, match="VampPrior"):
            Config().replace({"model.prior": "vamp", "model.arch": "cvae"})


class TestPriors:
    def test_mixture_matches_torch_distributions(self):
        prior = MixturePrior(3, 4)
        with torch.no_grad():
            prior.logvar.normal_()
            prior.logits.normal_()
        z = torch.randn(10, 3)
        reference = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(logits=prior.logits),
            torch.distributions.Independent(
                torch.distributions.Normal(prior.mu, torch.exp(0.5 * prior.logvar)), 1))
        torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))

    def test_vamp_is_the_mean_of_the_encoders_posteriors(self):
        model = build_model(ONE_LAYER[2])
        prior: VampPrior = model.prior
        z = torch.randn(5, 3)
        mu, logvar = model.encode(torch.sigmoid(prior.pseudo_logits))
        densities = torch.stack([
            torch.distributions.Normal(mu[j], torch.exp(0.5 * logvar[j])).log_prob(z).sum(1)
            for j in range(len(mu))]).exp().mean(0)
        torch.testing.assert_close(prior.log_prob(z, model.encoder), densities.log())

    def test_samples_follow_the_mixture(self):
        prior = MixturePrior(2, 2)
        with torch.no_grad():
            prior.mu.copy_(torch.tensor([[-5.0, 0.0], [5.0, 0.0]]))
            prior.logvar.fill_(-4.0)
            prior.logits.copy_(torch.tensor([0.0, math.log(3.0)]))  # weights 1/4, 3/4
        z = prior.sample(20_000, generator=torch.Generator().manual_seed(0))
        assert (z[:, 0] > 0).float().mean().item() == pytest.approx(0.75, abs=0.015)


class TestHierarchical:
    def test_whitened_codes_invert(self):
        """decode() maps whitened codes through the prior: a code's posterior under the
        prior-only path is the code itself, so encode(decode) keeps the top layer's code
        when the posterior equals the prior (the freshly built model)."""
        model = build_model(HVAE)
        x, _ = batch(3)
        mu, logvar = model.encode(x)
        torch.testing.assert_close(mu, torch.zeros_like(mu))  # zero-initialised posteriors
        torch.testing.assert_close(logvar, torch.zeros_like(logvar))
        elbo = negative_elbo(model, x)
        assert elbo["kl"].item() == pytest.approx(0.0, abs=1e-5)

    def test_a_residual_cell_adds_the_same_whatever_the_input_scale(self):
        """Pre-norm cells: cell(c x) - c x = cell(x) - x, so no input, however large, makes
        a cell amplify it (the unnormalised cell ran away on one faint test digit)."""
        from vaelab.models.hvae import ResidualCell
        cell = perturb(ResidualCell(32, depth=4)).double()
        x = torch.randn(5, 32, generator=torch.Generator().manual_seed(0), dtype=torch.double)
        step = cell(x) - x
        for scale in (10.0, 1e4):
            torch.testing.assert_close(cell(scale * x) - scale * x, step,
                                       atol=1e-4, rtol=1e-4)  # LayerNorm eps: 1e-5

    def test_loss_falls(self):
        torch.manual_seed(0)
        model = build_model(HVAE)
        x, _ = batch(4)
        x = x.repeat(8, 1, 1, 1)  # four patterns to learn; random pixels have no floor below
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        first = None
        for _ in range(60):
            loss = negative_elbo(model, x)["loss"]
            first = first if first is not None else loss.item()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert loss.item() < 0.5 * first


def test_cli_trains_a_hierarchical_vae_with_iwae_and_ema(tmp_path, data_dir):
    import json

    from safetensors.torch import load_file

    from vaelab.cli import main

    run = tmp_path / "hvae"
    assert main(["train", "--limit", "1000", "--val-size", "200", "--model", "hvae",
                 "--layers", "2", "--width", "32", "--latent-dim", "4", "--objective", "iwae",
                 "--k", "2", "--ema", "0.9", "--grad-clip", "500", "--epochs", "2",
                 "--nll-every", "1", "--nll-images", "50", "--nll-k", "5", "--threads", "1",
                 "--sample-grid", "4", "--no-progress", "--out", str(run)]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["test_nll_k"] for r in records] == [5, 5]
    # The logged estimate is -L_5 of the averaged weights on the first 50 test images:
    # recompute it from the last checkpoint, with the same seed.
    from vaelab.data.datasets import load_test, to_float
    from vaelab.runs.checkpoint import load_checkpoint
    from vaelab.training.steps import VAL_NOISE_SEED

    model, cfg = load_checkpoint(run / "checkpoints" / "last")
    x = to_float(load_test(cfg.data, data_dir).images[:50])
    bound = iwae_bound(model, x, 5, torch.Generator().manual_seed(VAL_NOISE_SEED))
    assert records[-1]["test_nll"] == pytest.approx(-bound.mean().item(), abs=1e-3)
    last = run / "checkpoints" / "last"
    averaged = load_file(last / "model.safetensors")
    online = load_file(last / "online.safetensors")
    assert averaged.keys() == online.keys()
    assert any(not torch.equal(averaged[k], online[k]) for k in averaged)
    assert vaelab.load(run).sample(3).shape == (3, 1, 28, 28)
