"""Every model family for images of any shape (C, H, W), grayscale or colour, and for any
number of classes; and, with the default MNIST shape, the same networks as before images
had a shape."""

import pytest
import torch

from vaelab.config import ModelConfig
from vaelab.models.iwae import iwae_bound, max_rows_for
from vaelab.models.nn import padding
from vaelab.models.vae import build_model
from vaelab.training.objectives import negative_elbo

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 20, 20), (3, 48, 40)]
FAMILIES = {
    "mlp": dict(arch="mlp", hidden=(32,), latent_dim=3),
    "conv": dict(arch="conv", channels=(4, 8, 8), dense=16, latent_dim=3),
    "cvae": dict(arch="cvae", channels=(4, 8), dense=0, latent_dim=3, num_classes=7),
    "hvae": dict(arch="hvae", layers=2, latent_dim=3, width=16),
    "mlp-conditional": dict(arch="mlp", hidden=(32,), latent_dim=3, conditional=True,
                            num_classes=4),
    "mlp-vamp": dict(arch="mlp", hidden=(32,), latent_dim=3, prior="vamp",
                     prior_components=5),
    "hvae-conditional": dict(arch="hvae", layers=2, latent_dim=2, width=16, conditional=True,
                             num_classes=3),
}
LIKELIHOODS = ["bernoulli", "gaussian-learned", "logistic-mixture"]


def images(n: int, shape, seed: int = 0) -> torch.Tensor:
    """8-bit images k / 255, (n, C, H, W): a target every likelihood reads."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g).float() / 255


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_at_every_shape(family, shape, likelihood):
    cfg = ModelConfig(**FAMILIES[family], image_shape=shape, likelihood=likelihood,
                      logistic_components=3)
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.image_shape == shape
    x = images(4, shape)
    y = torch.arange(4) % cfg.num_classes if model.conditional else None
    if model.conditional:
        assert model.num_classes == cfg.num_classes
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (4, cfg.total_latent_dim)
    params = model.decode(mu, y)
    channels = model.likelihood.out_channels(shape[0])
    assert params.shape == (4, channels, *shape[1:])
    assert model.reconstruct(x, y).shape == x.shape
    samples = model.sample(5, generator=torch.Generator().manual_seed(1),
                           label=1 if model.conditional else None)
    assert samples.shape == (5, *shape) and 0 <= samples.min() and samples.max() <= 1
    drawn = model.likelihood.sample(params, torch.Generator().manual_seed(2))
    assert drawn.shape == x.shape and 0 <= drawn.min() and drawn.max() <= 1

    losses = negative_elbo(model, x, y=y)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert iwae_bound(model, x, 3, torch.Generator().manual_seed(3), y=y).shape == (4,)


# Parameter counts of the families at the MNIST shape before images had a shape (measured
# at commit 089e8a0): the default shape must build the very same networks.
MNIST_COUNTS = {
    "mlp": 51_318,
    "conv": 5_095,  # as --pad32 built it: three stride-2 layers need 28 padded to 32
    "cvae": 9_215,
    "hvae": 30_344,
    "mlp-conditional": 52_018,
    "mlp-vamp": 55_238,
    "hvae-conditional": 30_496,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_mnist_shape_builds_the_networks_of_before(family):
    cfg = {k: v for k, v in FAMILIES[family].items() if k != "num_classes"}
    model = build_model(ModelConfig(**cfg))
    assert sum(p.numel() for p in model.parameters()) == MNIST_COUNTS[family]


class TestPadding:
    def test_sides_go_up_to_the_next_multiple(self):
        assert padding((1, 28, 28), 32) == (2, 2, 2, 2)  # --pad32, as it always was
        assert padding((1, 28, 28), 4) == (0, 0, 0, 0)
        assert padding((3, 27, 30), 4) == (1, 1, 0, 1)  # (left, right, top, bottom)
        assert padding((1, 20, 40), 8) == (0, 0, 2, 2)

    @pytest.mark.parametrize("shape", [(1, 20, 20), (3, 27, 30), (3, 48, 40)])
    def test_padding_is_cropped_away(self, shape):
        """The decoder's output covers the image exactly, with no padded border, and the
        encoder reads the image at its place inside the padded frame."""
        model = build_model(ModelConfig(arch="conv", channels=(4, 8, 8), latent_dim=2,
                                        image_shape=shape, pad32=True, likelihood="bernoulli"))
        assert all(side % 32 == 0 for side in padded_sides(shape, model.encoder.padding))
        assert model.decode(torch.zeros(2, 2)).shape == (2, *shape)

    def test_rows_per_chunk_scale_with_the_decoded_size(self):
        assert max_rows_for(build_model(ModelConfig(arch="mlp"))) == 4096
        colour = build_model(ModelConfig(arch="mlp", image_shape=(3, 32, 32),
                                         likelihood="logistic-mixture"))
        assert max_rows_for(colour) == 4096 * 784 // (100 * 32 * 32)


def padded_sides(shape, pad):
    left, right, top, bottom = pad
    return shape[1] + top + bottom, shape[2] + left + right
