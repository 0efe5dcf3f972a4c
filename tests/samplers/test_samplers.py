"""The post-hoc Gaussian-mixture sampler: its fit, its file, and `sample` on loaded runs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import vaelab
from helpers import assert_one_line_error, train_quietly
from vaelab.cli import main
from vaelab.config import Config
from vaelab.errors import RunError
from vaelab.models.vae import build_model
from vaelab.samplers import FIT_IMAGES, FIT_WORK, MIN_FIT_IMAGES, MIXTURE_FILE, fit_count
from vaelab.samplers.mixture import GaussianMixture

TINY_RUN = {"data.limit": 2000, "data.val_size": 500, "model.arch": "mlp",
            "model.hidden": [128], "model.latent_dim": 4, "train.epochs": 1,
            "train.batch_size": 100, "train.threads": 2, "train.sample_grid": 2}


def two_clusters(n: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (n, 3) in two well-separated clusters, the second three times as likely."""
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(n, generator=generator) < 0.75).long()
    centres = torch.tensor([[-5.0, 0.0, 1.0], [5.0, 2.0, -1.0]])
    spread = torch.tensor([[0.5, 1.0, 0.2], [1.0, 0.3, 0.5]])
    codes = centres[labels] + spread[labels] * torch.randn(n, 3, generator=generator)
    return codes, labels


class TestGaussianMixture:
    def test_fit_recovers_the_clusters(self):
        codes, _ = two_clusters()
        mixture = GaussianMixture.fit(codes, None, components=2, seed=0, fitted_to="test")
        order = mixture.means[:, 0].argsort()
        torch.testing.assert_close(mixture.means[order], torch.tensor(
            [[-5.0, 0.0, 1.0], [5.0, 2.0, -1.0]]), atol=0.1, rtol=0)
        torch.testing.assert_close(mixture.weights[order], torch.tensor([0.25, 0.75]),
                                   atol=0.03, rtol=0)
        covariance = mixture.scale_tril[order] @ mixture.scale_tril[order].transpose(1, 2)
        torch.testing.assert_close(covariance.diagonal(dim1=1, dim2=2), torch.tensor(
            [[0.25, 1.0, 0.04], [1.0, 0.09, 0.25]]), atol=0.05, rtol=0.1)

    def test_samples_follow_the_fitted_distribution(self):
        codes, _ = two_clusters()
        mixture = GaussianMixture.fit(codes, None, components=2, seed=0, fitted_to="test")
        z = mixture.sample(20_000, generator=torch.Generator().manual_seed(1))
        assert z.shape == (20_000, 3)
        assert (z[:, 0] > 0).float().mean().item() == pytest.approx(0.75, abs=0.02)
        torch.testing.assert_close(z.mean(0), codes.mean(0), atol=0.1, rtol=0)
        cold = mixture.sample(20_000, temperature=0.5, generator=torch.Generator().manual_seed(1))
        right = cold[:, 0] > 0  # the spread about each mean halves with the temperature
        assert cold[right, 1].std().item() == pytest.approx(0.15, rel=0.1)

    def test_one_mixture_per_class_draws_the_asked_class(self):
        codes, labels = two_clusters()
        mixture = GaussianMixture.fit(codes, labels, components=3, seed=0, fitted_to="test")
        assert mixture.num_components == 6 and mixture.classes.tolist() == [0] * 3 + [1] * 3
        y = torch.tensor([0, 1] * 500)
        z = mixture.sample(1000, generator=torch.Generator().manual_seed(2), y=y)
        assert ((z[:, 0] > 0) == (y == 1)).all()

    def test_file_round_trip_holds_only_tensors(self, tmp_path):
        codes, labels = two_clusters(500)
        mixture = GaussianMixture.fit(codes, labels, components=2, seed=0, fitted_to="codes")
        path = tmp_path / MIXTURE_FILE
        mixture.save(path)
        assert set(load_file(path)) == {"weights", "means", "scale_tril", "classes"}
        again = GaussianMixture.load(path)
        for name in ("weights", "means", "scale_tril", "classes"):
            assert torch.equal(getattr(again, name), getattr(mixture, name))
        assert again.fitted_to == "codes"
        first = mixture.sample(50, generator=torch.Generator().manual_seed(3))
        assert torch.equal(first, again.sample(50, generator=torch.Generator().manual_seed(3)))

    def test_a_corrupt_file_is_refused(self, tmp_path):
        path = tmp_path / MIXTURE_FILE
        path.write_bytes(b"\x80\x04not safetensors")
        with pytest.raises(RunError, match="unreadable mixture sampler"):
            GaussianMixture.load(path)


def test_wider_codes_are_fitted_to_fewer_training_images():
    """EM's cost grows as codes x units^2: the fit's work stays within the default's."""
    assert fit_count(2) == fit_count(16) == FIT_IMAGES
    assert fit_count(32) == 55_000  # the default model's 32 units: all of MNIST's images
    counts = [fit_count(d) for d in range(1, 257)]
    assert counts == sorted(counts, reverse=True)
    assert all(n * d ** 2 <= FIT_WORK or n == MIN_FIT_IMAGES
               for d, n in zip(range(1, 257), counts))
    assert fit_count(256) == MIN_FIT_IMAGES


class TestSamplingFromRuns:
    @pytest.mark.parametrize("overrides", [
        {}, {"model.arch": "hvae", "model.layers": 2, "model.latent_dim": 3, "model.width": 32},
        {"model.conditional": True}], ids=["mlp", "hvae", "conditional"])
    def test_training_fits_the_mixture_and_samples_decode(self, overrides, tmp_path_factory,
                                                          data_dir):
        run = train_quietly({**TINY_RUN, **overrides}, tmp_path_factory, "gmm", data_dir)
        path = run / "checkpoints" / "best" / MIXTURE_FILE
        mixture = GaussianMixture.load(path)
        model = vaelab.load(run)
        assert model.default_sampler == "gmm"
        assert mixture.latent_dim == model.latent_dim
        assert "training images" in json.loads((run / "summary.json").read_text())[
            "gmm_sampler"]
        label = 3 if model.conditional else None
        generator = torch.Generator().manual_seed(0)
        images = model.sample(6, generator=generator, label=label)
        assert images.shape == (6, 1, 28, 28)
        assert 0 <= images.min() and images.max() <= 1
        # the default is the mixture: the same codes as drawing from it by name
        again = model.sample(6, generator=torch.Generator().manual_seed(0), label=label,
                             sampler="gmm")
        assert torch.equal(images, again)
        prior = model.sample(6, generator=torch.Generator().manual_seed(0), label=label,
                             sampler="prior")
        assert not torch.equal(images, prior)
        if model.conditional:  # class 3's codes come from class 3's components only
            assert set(mixture.classes.tolist()) == set(range(10))

    def test_a_run_without_a_mixture_fits_it_on_first_use(self, trained_run, tmp_path,
                                                          data_dir, capsys):
        import shutil

        run = tmp_path / "old"
        shutil.copytree(trained_run, run)
        path = run / "checkpoints" / "best" / MIXTURE_FILE
        path.unlink()  # as a run trained before the sampler existed
        assert main(["sample", str(run), "--grid", "3", "--data-dir", str(data_dir)]) == 0
        assert path.is_file()
        assert "fitting the gmm sampler" in capsys.readouterr().err
        assert main(["sample", str(run), "--grid", "3", "--sampler", "prior",
                     "--out", str(tmp_path / "prior.png")]) == 0
        assert (tmp_path / "prior.png").is_file()

    def test_a_model_built_in_python_samples_from_its_prior(self):
        model = build_model(Config().replace({"model.arch": "mlp"}).model)
        assert model.sample(2).shape == (2, 1, 28, 28)
        with pytest.raises(ValueError, match="no 'gmm' sampler"):
            model.sample(2, sampler="gmm")

    def test_unknown_sampler_is_one_line(self, trained_run, capsys):
        assert_one_line_error(capsys, ["sample", str(trained_run), "--sampler", "flow"],
                              "--sampler")
