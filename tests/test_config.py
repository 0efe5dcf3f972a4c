import re

import pytest

from vaelab.config import Config, ModelConfig, choices, load_config, load_toml, parse_override
from vaelab.errors import ConfigError
from vaelab.models.likelihoods import LIKELIHOODS
from vaelab.models.vae import MODELS


class TestConfig:
    def test_defaults_round_trip_through_dict(self):
        cfg = Config()
        assert Config.from_dict(cfg.to_dict()) == cfg

    def test_dotted_overrides(self):
        cfg = Config().replace({"model.latent_dim": 32, "model.hidden": [512, 256]})
        assert cfg.model.latent_dim == 32
        assert cfg.model.hidden == (512, 256)
        assert cfg.train == Config().train

    @pytest.mark.parametrize("overrides, message", [
        ({"model.latent_dim": 0}, "latent_dim must be between 1 and 256"),
        ({"model.latent_dim": 257}, "latent_dim must be between 1 and 256"),
        ({"train.epochs": -1}, "train.epochs must be >= 1"),
        ({"model.arch": "transformer"}, "model.arch must be one of mlp, conv"),
        ({"model.nope": 1}, "unknown config key(s): model.nope"),
        ({"nope.key": 1}, "unknown config key 'nope.key'"),
        ({"train.lr": "fast"}, "train.lr must be a number"),
        ({"train.epochs": 2.5}, "train.epochs must be an integer"),
        ({"model.pad32": 1}, "model.pad32 must be true or false"),
        ({"model.hidden": ["a"]}, "model.hidden must be a list of integers"),
        ({"train.batch_size": 0}, "train.batch_size must be >= 1"),
        ({"model.image_shape": [2, 28, 28]}, "model.image_shape must be [channels, height, "
                                             "width] with 1 or 3 channels"),
        ({"model.image_shape": [3, 32]}, "got [3, 32]"),
        ({"model.image_shape": [1, 7, 28]}, "sides between 8 and 256"),
        ({"model.image_shape": [3, 32, 257]}, "sides between 8 and 256"),
        ({"model.image_shape": [3, 32.0, 32]}, "model.image_shape must be a list of integers"),
        ({"model.num_classes": 1, "model.arch": "cvae"}, "at least 2 classes"),
        ({"model.num_classes": -1}, "model.num_classes must be >= 0"),
        ({"model.logistic_components": 0}, "model.logistic_components must be >= 1"),
    ])
    def test_bad_values_name_the_key(self, overrides, message):
        with pytest.raises(ConfigError, match=re.escape(message)):
            Config().replace(overrides)

    def test_registries_match_the_config_choices(self):
        assert set(MODELS) == set(choices(ModelConfig, "arch"))
        assert set(LIKELIHOODS) == set(choices(ModelConfig, "likelihood")) - {"auto"}

    @pytest.mark.parametrize("text, expected", [
        ("model.latent_dim=32", ("model.latent_dim", 32)),
        ("train.lr=3e-4", ("train.lr", 3e-4)),
        ("model.pad32=true", ("model.pad32", True)),
        ("model.channels=[32, 64]", ("model.channels", [32, 64])),
        ("model.arch=mlp", ("model.arch", "mlp")),
    ])
    def test_parse_override(self, text, expected):
        assert parse_override(text) == expected

    def test_parse_override_needs_equals(self):
        with pytest.raises(ConfigError, match="section.key=value"):
            parse_override("model.latent_dim")

    def test_toml_file(self, tmp_path):
        path = tmp_path / "c.toml"
        path.write_text('[model]\narch = "mlp"\nhidden = [400]\nlatent_dim = 20\n')
        cfg = Config.from_dict(load_toml(path))
        assert (cfg.model.arch, cfg.model.hidden, cfg.model.latent_dim) == ("mlp", (400,), 20)

    def test_toml_errors(self, tmp_path):
        bad = tmp_path / "bad.toml"
        bad.write_text("[model\n")
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_toml(bad)
        with pytest.raises(ConfigError, match="config file not found"):
            load_toml(tmp_path / "missing.toml")

    def test_presets_are_valid(self):
        from pathlib import Path

        presets = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))
        assert presets, "configs/ holds the shipped presets"
        for path in presets:
            load_config(path)  # raises on unknown keys, wrong types or bad values


class TestImageShape:
    def test_configs_written_before_image_shapes_mean_mnist(self):
        """A run's config.json from before these keys existed loads as MNIST, ten classes."""
        old = Config().to_dict()
        for key in ("image_shape", "num_classes", "logistic_components"):
            del old["model"][key]
        model = Config.from_dict(old).model
        assert model.image_shape == (1, 28, 28) and model.num_classes == 10
        assert Config.from_dict(old) == Config()

    def test_shape_round_trips_through_json_and_toml(self, tmp_path):
        import json

        cfg = Config().replace({"model.image_shape": [3, 32, 32], "model.num_classes": 2,
                                "model.likelihood": "logistic-mixture"})
        path = tmp_path / "config.json"
        path.write_text(json.dumps(cfg.to_dict()))
        assert load_config(path) == cfg
        assert load_config(path).model.image_shape == (3, 32, 32)  # a tuple again
        toml = tmp_path / "c.toml"
        toml.write_text('[model]\nimage_shape = [3, 48, 40]\nlikelihood = "logistic-mixture"\n')
        assert load_config(toml).model.image_shape == (3, 48, 40)
        assert parse_override("model.image_shape=[1, 20, 20]") == ("model.image_shape",
                                                                   [1, 20, 20])

    def test_an_unconditional_model_needs_no_classes(self):
        assert Config().replace({"model.num_classes": 0}).model.num_classes == 0
