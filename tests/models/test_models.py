import pytest
import torch

from vaelab.config import ModelConfig
from vaelab.models.vae import build_model
from vaelab.training.objectives import negative_elbo


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


CONFIGS = [
    ModelConfig(arch="mlp", hidden=(400,), latent_dim=20),
    ModelConfig(arch="mlp", hidden=(512, 256), latent_dim=1, likelihood="gaussian"),
    ModelConfig(arch="mlp", hidden=(64,), latent_dim=256, pad32=True),
    ModelConfig(arch="conv", channels=(32, 64), dense=16, latent_dim=2),
    ModelConfig(arch="conv", channels=(8, 16), dense=0, latent_dim=16,
                likelihood="gaussian-learned"),
    ModelConfig(arch="conv", channels=(8, 16, 32), latent_dim=8, pad32=True),
    ModelConfig(arch="conv", channels=(4, 8, 8, 8, 8), latent_dim=3, pad32=True),
    ModelConfig(),
]


class TestShapes:
    @pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.arch}-{c.latent_dim}-"
                             f"{c.likelihood}-{'pad' if c.pad32 else '28'}")
    def test_every_configuration(self, cfg):
        model = build_model(cfg)
        x = torch.rand(5, 1, 28, 28)
        mu, logvar = model.encode(x)
        assert mu.shape == logvar.shape == (5, cfg.total_latent_dim)
        assert model.decode(mu).shape == (5, 1, 28, 28)
        samples = model.sample(6)
        assert samples.shape == (6, 1, 28, 28)
        assert samples.min() >= 0 and samples.max() <= 1
        assert model.reconstruct(x).shape == (5, 1, 28, 28)
        losses = negative_elbo(model, x)
        assert set(losses) == {"loss", "recon", "kl"}
        assert all(v.shape == () and torch.isfinite(v) for v in losses.values())

    def test_a_deep_conv_pads_itself_as_pad32_did(self):
        """Three stride-2 layers do not divide 28: the model pads to 32 by itself, the same
        network, weights and outputs as --pad32 (which this used to need)."""
        x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        outputs = []
        for pad32 in (False, True):
            torch.manual_seed(0)
            model = build_model(ModelConfig(arch="conv", channels=(8, 16, 32), pad32=pad32))
            assert model.encoder.padding == model.decoder.padding == (2, 2, 2, 2)
            mu, _ = model.encode(x)
            outputs.append((mu, model.decode(mu)))
        torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


class TestReferenceNetworks:
    def test_pytorch_examples_classic_mlp(self):
        # fc1 784*400+400, fc21/fc22 2*(400*20+20), fc3 20*400+400, fc4 400*784+784
        model = build_model(ModelConfig(arch="mlp", hidden=(400,), latent_dim=20))
        assert n_params(model) == 314_000 + 16_040 + 8_400 + 314_384 == 652_824

    def test_keras_example_conv(self):
        # keras.io/examples/generative/vae: encoder 69,076 and decoder 65,089 parameters.
        model = build_model(ModelConfig(arch="conv", channels=(32, 64), dense=16,
                                        latent_dim=2))
        assert n_params(model.encoder) == 69_076
        assert n_params(model.decoder) == 65_089


def test_weights_change_after_one_step():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="conv", channels=(8, 16), latent_dim=4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    negative_elbo(model, torch.rand(8, 1, 28, 28).round())["loss"].backward()
    optimizer.step()
    after = model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)


def test_sampling_is_reproducible_with_a_generator():
    model = build_model(ModelConfig(arch="mlp", hidden=(32,), latent_dim=3))
    a = model.sample(4, generator=torch.Generator().manual_seed(1))
    b = model.sample(4, generator=torch.Generator().manual_seed(1))
    c = model.sample(4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Temperature 0 decodes z = 0 for every sample.
    cold = model.sample(3, temperature=0.0)
    assert torch.equal(cold[0], cold[1])
