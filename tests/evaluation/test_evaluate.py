"""Evaluation maths: the IWAE bound against the ELBO and against an exact log-likelihood,
FID's basic properties, and the evaluate / compare commands."""

import json
import math

import pytest
import torch

from vaelab.cli import main
from vaelab.data.datasets import load_test, to_float
from vaelab.evaluation.classifier import features_and_probs, save_classifier, train_classifier
from vaelab.evaluation.fid import classifier_score, frechet_distance
from vaelab.models.iwae import iwae_bound, log_weights
from vaelab.models.likelihoods import LOG_2PI
from vaelab.runs.rundir import load_run
from vaelab.training.objectives import negative_elbo


@pytest.fixture(scope="module")
def model_and_images(trained_run_2d, data_dir):
    model, cfg = load_run(trained_run_2d)
    test = load_test(cfg.data, data_dir)
    return model, to_float(test.images[:8])


class TestIWAE:
    def test_k1_has_the_expectation_of_the_elbo(self, model_and_images):
        model, x = model_and_images
        torch.manual_seed(0)
        # Each log weight is a one-sample ELBO estimate (K = 1); average 4,000 of them.
        w = log_weights(model, x, 4000, torch.Generator().manual_seed(1))  # (B, 4000)
        elbo_from_weights = w.mean(1)
        # The analytic-KL ELBO, averaged over 4,000 reparameterised samples.
        elbo = torch.stack([-negative_elbo(model, x[i:i + 1].expand(4000, -1, -1, -1))["loss"]
                            for i in range(len(x))]).double()
        stderr = w.std(1) / math.sqrt(4000)
        assert torch.all((elbo_from_weights - elbo).abs() < 4 * stderr + 0.05)

    def test_bound_rises_with_k_and_stays_above_the_elbo(self, model_and_images):
        model, x = model_and_images
        g = torch.Generator().manual_seed(0)
        bounds = [iwae_bound(model, x, k, g).mean().item() for k in (1, 10, 100, 1000)]
        assert bounds[1] > bounds[0] and bounds[2] > bounds[1] - 0.02
        assert bounds[3] > bounds[2] - 0.02
        elbo = -negative_elbo(model, x.repeat(200, 1, 1, 1))["loss"].item()
        assert bounds[3] > elbo

    def test_chunking_does_not_change_the_result(self, model_and_images):
        model, x = model_and_images
        a = iwae_bound(model, x, 300, torch.Generator().manual_seed(5), max_rows=100_000)
        b = iwae_bound(model, x, 300, torch.Generator().manual_seed(5), max_rows=8 * 300)
        torch.testing.assert_close(a, b)

    def test_k5000_matches_an_analytic_log_likelihood(self):
        """A linear-Gaussian VAE (probabilistic PCA) has log p(x) in closed form. Its
        encoder is deliberately off (posterior variance x e^0.5, mean shifted), so K=1 is
        visibly below log p(x) and K=5000 must close the gap. The grid integral used on the
        trained model below agrees with the closed form too."""
        model, exact_fn = linear_gaussian_vae()
        x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))
        exact = exact_fn(x)
        g = torch.Generator().manual_seed(0)
        k1 = torch.stack([iwae_bound(model, x, 1, g) for _ in range(400)]).mean(0)
        k5000 = iwae_bound(model, x, 5000, g)
        assert torch.all(exact - k1 > 0.1)  # the ELBO is visibly loose ...
        assert torch.all((k5000 - exact).abs() < 0.1), (k5000, exact)  # ... K=5000 is not
        grid = torch.stack([exact_log_px(model, xi, extent=6.0) for xi in x])
        torch.testing.assert_close(grid, exact, atol=1e-3, rtol=0)

    def test_k5000_on_a_trained_2d_vae(self, exact_model, data_dir):
        """On a trained 2-D Bernoulli VAE the grid gives the exact log p(x). There the
        estimate must sit between the ELBO and log p(x) (up to noise), image by image.
        How close it gets depends on how well the Gaussian q fits: measured on these 8
        images, the median gap is about 0.1 nats, but an ambiguous digit whose posterior has
        a second mode that q never proposes stays tens of nats below."""
        model, cfg = load_run(exact_model)
        x = to_float(load_test(cfg.data, data_dir).images[:8])
        exact = torch.stack([exact_log_px(model, xi) for xi in x])
        g = torch.Generator().manual_seed(0)
        estimate = iwae_bound(model, x, 5000, g)
        elbo = log_weights(model, x, 2000, g).mean(1)  # Monte-Carlo ELBO per image
        assert torch.all(elbo < estimate) and torch.all(estimate < exact + 0.3)
        assert estimate.mean() < exact.mean() + 0.05


def linear_gaussian_vae():
    """x = W z + b + noise, W with orthogonal columns, so the true posterior is diagonal."""
    from torch import nn

    from vaelab.models.likelihoods import Gaussian
    from vaelab.models.vae import VAE, Decoder, GaussianEncoder

    g = torch.Generator().manual_seed(0)
    sigma, scales = 0.5, torch.tensor([3.0, 2.0])
    w = torch.linalg.qr(torch.randn(784, 2, generator=g)).Q * scales  # (784, 2)
    b = torch.rand(784, generator=g) * 0.5
    post_var = 1 / (1 + scales.square() / sigma**2)  # (2,)
    decoder = nn.Sequential(nn.Linear(2, 784), nn.Unflatten(1, (1, 28, 28)))
    encoder = nn.Sequential(nn.Linear(784, 4))
    with torch.no_grad():
        decoder[0].weight.copy_(w)
        decoder[0].bias.copy_(b)
        gain = post_var[:, None] * w.T / sigma**2  # posterior mean = gain (x - b)
        encoder[0].weight.zero_()
        encoder[0].weight[:2] = gain
        encoder[0].bias[:2] = -gain @ b + 0.3 * post_var.sqrt()  # mean off by 0.3 std
        encoder[0].bias[2:] = post_var.log() + 0.5  # variance e^0.5 times too large
    model = VAE(GaussianEncoder(nn.Flatten(), encoder, pad=0),
                Decoder(decoder, Gaussian(sigma, learned=False), pad=0), latent_dim=2)

    def exact(x):
        dist = torch.distributions.LowRankMultivariateNormal(
            b.double(), w.double(), torch.full((784,), sigma**2, dtype=torch.float64))
        return dist.log_prob(x.flatten(1).double())

    return model.eval(), exact


@pytest.fixture(scope="module")
def exact_model(tmp_path_factory, data_dir):
    """A 2-D latent MLP trained well enough that q(z|x) covers the posterior."""
    from vaelab.config import Config
    from vaelab.training.loop import train

    cfg = Config().replace({"model.arch": "mlp", "model.hidden": [256], "model.latent_dim": 2,
                            "data.val_size": 500, "train.epochs": 4, "train.batch_size": 100})
    return train(cfg, out=tmp_path_factory.mktemp("exact") / "run", data_dir=data_dir,
                 progress_bar=False, log=lambda *_: None)


@torch.no_grad()
def log_joint_on(model, x, z):
    """log p(x|z) + log p(z) for one image x (1, 28, 28) at latent points z (P, 2)."""
    out = []
    for chunk in z.split(20_000):
        out.append(model.likelihood.log_prob(x.expand(len(chunk), -1, -1, -1),
                                             model.decode(chunk)))
    return torch.cat(out).double() - 0.5 * (2 * LOG_2PI + z.square().sum(1)).double()


def exact_log_px(model, x, extent=8.0, coarse=0.04, fine=400):
    """Riemann sum of p(x, z) over a fine grid on the box that holds the posterior mass.

    A coarse grid over [-extent, extent]^2 finds every point within e^-25 of the peak;
    everything outside that box contributes less than e^-12 relative to the total.
    """
    axis = torch.arange(-extent, extent + coarse / 2, coarse)
    z = torch.cartesian_prod(axis, axis)
    log_joint = log_joint_on(model, x, z)
    mass = z[log_joint > log_joint.max() - 25]
    lo, hi = mass.min(0).values - 2 * coarse, mass.max(0).values + 2 * coarse
    xs, ys = (torch.linspace(lo[i], hi[i], fine) for i in range(2))
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    log_joint = log_joint_on(model, x, torch.cartesian_prod(xs, ys))
    return torch.logsumexp(log_joint, 0) + torch.log(cell.double())


class TestFID:
    def test_classifier_learns(self, quick_classifier):
        assert quick_classifier[1] > 0.95  # 5,000 images, two epochs

    def test_self_distance_is_zero_and_degradation_grows_it(self, quick_classifier,
                                                            data_dir):
        from vaelab.config import DataConfig

        model, _ = quick_classifier
        test = load_test(DataConfig(mode="grayscale"), data_dir)
        images = to_float(test.images[:2000])
        reference, _ = features_and_probs(model, images)
        assert abs(frechet_distance(reference, reference)) < 1e-6
        g = torch.Generator().manual_seed(0)
        distances = []
        for noise in (0.1, 0.3, 0.6):
            noisy = (images + noise * torch.randn(images.shape, generator=g)).clamp(0, 1)
            distances.append(frechet_distance(features_and_probs(model, noisy)[0], reference))
        assert 0 < distances[0] < distances[1] < distances[2]
        blurred = torch.nn.functional.avg_pool2d(images, 3, stride=1, padding=1)
        assert frechet_distance(features_and_probs(model, blurred)[0], reference) > 0

    def test_frechet_distance_matches_the_sqrtm_formula(self):
        import numpy as np
        import scipy.linalg

        rng = np.random.default_rng(0)
        a, b = rng.normal(size=(3000, 20)), rng.normal(size=(3000, 20)) * 1.5 + 0.3
        cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        reference = (((a.mean(0) - b.mean(0)) ** 2).sum()
                     + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real))
        assert frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(reference)

    def test_classifier_score_bounds(self):
        uniform = torch.full((100, 10), 0.1)
        assert classifier_score(uniform) == pytest.approx(1.0)
        confident = torch.eye(10).repeat(10, 1)  # every class, each predicted with certainty
        assert classifier_score(confident) == pytest.approx(10.0, rel=1e-6)


def test_evaluate_and_compare(trained_run, trained_run_2d, data_dir, tmp_path, monkeypatch,
                              quick_classifier, capsys):
    monkeypatch.setenv("VAELAB_CACHE_DIR", str(tmp_path / "cache"))
    save_classifier(quick_classifier[0], "mnist", quick_classifier[1], epochs=1)
    assert main(["evaluate", str(trained_run), "--k", "20", "--data-dir", str(data_dir)]) == 0
    assert main(["evaluate", str(trained_run_2d), "--k", "20", "--images", "50",
                 "--precision", "bf16", "--data-dir", str(data_dir)]) == 0
    subset = json.loads((trained_run_2d / "eval.json").read_text())
    assert (subset["nll_images"], subset["nll_precision"]) == (50, "bf16")
    results = json.loads((trained_run / "eval.json").read_text())
    assert (results["nll_images"], results["nll_precision"]) == (10_000, "fp32")
    assert results["nll"] <= results["test_neg_elbo"] + 0.5
    assert results["nll_k"] == 20 and results["nll_stderr"] > 0
    assert "comparable with published NLLs" in results["protocol"]
    assert sum(results["sample_class_histogram"]) == 10_000
    assert results["fid"] > results["fid_train_vs_test"] >= 0
    # every sampler is reported: the default (the mixture) unsuffixed, the prior beside it
    assert results["sampler"] == "gmm"
    assert sum(results["sample_class_histogram_prior"]) == 10_000
    assert results["fid_prior"] != results["fid"]
    assert 0 <= results["legible"] <= 1 and 0 <= results["legible_prior"] <= 1
    assert results["legible_test"] > 0.5  # real digits: the classifier is confident on most
    assert 0 <= results["active_units"] <= 4 and 0.1 < results["knn_accuracy"] <= 1
    capsys.readouterr()
    assert main(["compare", str(trained_run), str(trained_run_2d)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | data | beta | test -ELBO | rate | distortion | NLL |")
    assert len(table) == 4
    assert table[2].split("|")[2].strip() == "binarized"
    from vaelab.evaluation.evaluate import data_mode

    assert data_mode({"protocol": "mnist grayscale in [0, 1] ... NOT comparable with "
                                  "published NLLs on binarized MNIST"}) == "grayscale"
    assert main(["compare", str(tmp_path)]) == 2
    assert "run vaelab evaluate" in capsys.readouterr().err


@pytest.mark.slow
def test_classifier_reaches_99_percent(data_dir):
    _, accuracy = train_classifier("mnist", data_dir, log=lambda *_: None)
    assert accuracy >= 0.99


def test_emulated_bf16_warns_once_in_one_line(trained_run, data_dir, tmp_path, monkeypatch,
                                              capsys):
    import shutil
    import warnings

    from vaelab.errors import SlowPathWarning
    from vaelab.training import speed

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    monkeypatch.setattr(speed, "bf16_native", lambda device: False)  # an AVX2-only CPU
    argv = ["evaluate", str(run), "--k", "2", "--images", "20", "--no-fid",
            "--data-dir", str(data_dir)]
    assert main([*argv, "--precision", "bf16"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [warned[0]] and warned[0].startswith("vaelab evaluate: warning: ")
    assert "emulated" in warned[0] and "--precision auto" in warned[0]
    assert json.loads((run / "eval.json").read_text())["nll_precision"] == "bf16"
    assert main([*argv, "--precision", "auto"]) == 0  # auto takes fp32 here, silently
    assert "warning" not in capsys.readouterr().err
    assert json.loads((run / "eval.json").read_text())["nll_precision"] == "fp32"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(speed, "bf16_native", lambda device: True)  # native: no word
        assert speed.resolve_precision("bf16", torch.device("cpu")) == "bf16"
        monkeypatch.setattr(speed, "bf16_native", lambda device: False)
        with pytest.raises(SlowPathWarning, match="emulated"):  # training warns the same
            speed.resolve_precision("bf16", torch.device("cpu"))
