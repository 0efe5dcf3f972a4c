"""Run configuration: frozen dataclasses, loaded from TOML, with dotted `key=value` overrides.

Configuration is data. Every field has a type and a default; unknown keys, wrong types and
out-of-range values fail with a `ConfigError` that names them. Choices are `Literal` types,
so the CLI, the TOML loader and the model registry read the same list.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_DATASETS = ("mnist", "fashion-mnist", "kmnist", "cifar10")
DataMode = Literal["auto", "binarized", "grayscale", "colour"]
Arch = Literal["mlp", "conv", "cvae", "hvae"]
Prior = Literal["auto", "normal", "mog", "vamp", "class"]
Bound = Literal["elbo", "iwae", "iwae-dreg"]
Likelihood = Literal["auto", "bernoulli", "gaussian", "gaussian-learned", "logistic-mixture"]
Optimizer = Literal["adam", "adamw"]
Schedule = Literal["constant", "cosine"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "bf16"]

MAX_LATENT_DIM = 256
MNIST_SHAPE = (1, 28, 28)  # (C, H, W) of the MNIST family: the default model.image_shape
IMAGE_CHANNELS = (1, 3)  # grayscale or colour
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 8, 256


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class DataConfig:
    """Which images to train on and how they are presented to the model.

    `dataset` is a built-in name (BUILTIN_DATASETS) or the path of a user's images: a folder
    of image files, or a .npz / .npy array (see data/sources.py). `mode` presents pixels as
    a fresh Bernoulli draw per pixel per epoch (binarized: grayscale images only, the
    likelihood protocol of MNIST) or as their 8-bit values in [0, 1] (grayscale, colour);
    auto picks binarized for the MNIST family and the values as they are for other data.
    `classes` is recorded by training from the data (the class names, in label order)."""

    dataset: str = "mnist"
    mode: DataMode = "auto"
    val_size: int = 5000  # training images held out for model selection
    limit: int = 0  # train on the first N remaining training images only (0: all)
    image_size: int = 0  # resize images to S x S (0: as stored)
    channels: int = 0  # 1 (gray) or 3 (colour) channels (0: as stored)
    classes: tuple[str, ...] = ()  # recorded from the data by training
    fingerprint: str = ""  # recorded by training: a digest of a path dataset's file names

    def __post_init__(self):
        _require(bool(self.dataset.strip()), "data.dataset must name a dataset or a path")
        _require(self.val_size >= 0, f"data.val_size must be >= 0, got {self.val_size}")
        _require(self.limit >= 0, f"data.limit must be >= 0, got {self.limit}")
        _require(self.image_size == 0 or 8 <= self.image_size <= 256,
                 f"data.image_size must be 0 (as stored) or between 8 and 256, "
                 f"got {self.image_size}")
        _require(self.channels in (0, 1, 3),
                 f"data.channels must be 0 (as stored), 1 or 3, got {self.channels}")

    @property
    def builtin(self) -> bool:
        return self.dataset in BUILTIN_DATASETS


@dataclass(frozen=True)
class ModelConfig:
    """The network. `hidden` is read by the MLP; `channels` and `dense` by the conv models
    (conv, and cvae: conv conditioned on the class); `layers`, `width` and `blocks` by the
    hierarchical VAE (hvae), whose `latent_dim` is per stochastic layer.

    `image_shape` and `num_classes` describe the data the model reads; training records them
    from the data, and their defaults (MNIST) are what configs written before they existed
    mean. A conv model zero-pads images whose sides its stride-2 layers do not divide
    (28x28 with three layers -> 32x32) and crops its outputs back."""

    arch: Arch = "hvae"  # the default run: see README, "The default model"
    latent_dim: int = 16
    hidden: tuple[int, ...] = (400,)
    channels: tuple[int, ...] = (32, 64)
    dense: int = 256  # conv: width of the dense layer before the latent heads (0: none)
    likelihood: Likelihood = "auto"  # auto: bernoulli for grayscale, logistic-mixture for colour
    gaussian_std: float = 0.1  # fixed std of the Gaussian likelihood; initial value when learned
    # zero-pad image sides up to a multiple of 32 inside the one-layer models (28x28 -> 32x32);
    # outputs are cropped back. The hvae reads pixels as a vector and is not padded.
    pad32: bool = False
    conditional: bool = False  # encoder and decoder read the one-hot class label
    prior: Prior = "auto"  # N(0,I); mog: mixture; vamp: VampPrior; class: p(z|y); auto: below
    prior_components: int = 100  # mixture components or pseudo-inputs (Tomczak used 500)
    layers: int = 2  # hvae: stochastic layers
    width: int = 256  # hvae: width of the residual cells
    blocks: int = 1  # hvae: residual cells per stochastic layer, on each path
    image_shape: tuple[int, int, int] = MNIST_SHAPE  # (channels, height, width) of the images
    num_classes: int = 10  # classes of the labels a conditional model reads
    logistic_components: int = 10  # K of the logistic-mixture likelihood (PixelCNN++: 10)

    @property
    def is_conditional(self) -> bool:
        return self.conditional or self.arch == "cvae"

    @property
    def likelihood_name(self) -> str:
        """The likelihood in use: `auto` is Bernoulli for grayscale images (the MNIST
        protocol) and the discretized logistic mixture for 8-bit colour images."""
        if self.likelihood != "auto":
            return self.likelihood
        return "bernoulli" if self.image_shape[0] == 1 else "logistic-mixture"

    @property
    def prior_name(self) -> str:
        """The prior in use: `auto` is the class prior p(z | y) for conditional one-layer
        models (their samples then agree with the asked class) and N(0, I) otherwise."""
        if self.prior != "auto":
            return self.prior
        return "class" if self.is_conditional and self.arch != "hvae" else "normal"

    @property
    def total_latent_dim(self) -> int:
        """Units of the whole latent code: latent_dim, times the layers of a hvae."""
        return self.latent_dim * (self.layers if self.arch == "hvae" else 1)

    def __post_init__(self):
        _require(
            1 <= self.total_latent_dim <= MAX_LATENT_DIM,
            f"model.latent_dim must be between 1 and {MAX_LATENT_DIM}"
            + (" in all layers together" if self.arch == "hvae" else "")
            + f", got {self.total_latent_dim}",
        )
        _require(self.prior_components >= 1,
                 f"model.prior_components must be >= 1, got {self.prior_components}")
        _require(self.layers >= 1, f"model.layers must be >= 1, got {self.layers}")
        _require(self.width >= 1, f"model.width must be >= 1, got {self.width}")
        _require(self.blocks >= 0, f"model.blocks must be >= 0, got {self.blocks}")
        _require(self.arch != "hvae" or self.prior_name == "normal",
                 f"model.prior {self.prior!r} is for one-layer models; the hierarchical VAE "
                 f"learns its own prior over the lower layers")
        _require(self.prior_name != "class" or self.is_conditional,
                 "model.prior 'class' learns p(z | y) and needs a conditional model "
                 "(--model cvae or --conditional)")
        _require(self.prior_name != "vamp" or not self.is_conditional,
                 "the VampPrior's pseudo-inputs have no class: use prior mog or normal with "
                 "a conditional model")
        _require(len(self.hidden) > 0 and min(self.hidden) > 0,
                 f"model.hidden must be positive widths, got {list(self.hidden)}")
        _require(len(self.channels) > 0 and min(self.channels) > 0,
                 f"model.channels must be positive counts, got {list(self.channels)}")
        _require(self.dense >= 0, f"model.dense must be >= 0, got {self.dense}")
        _require(self.gaussian_std > 0, f"model.gaussian_std must be > 0, got {self.gaussian_std}")
        _require(len(self.image_shape) == 3 and self.image_shape[0] in IMAGE_CHANNELS
                 and all(MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE
                         for side in self.image_shape[1:]),
                 f"model.image_shape must be [channels, height, width] with 1 or 3 channels "
                 f"and sides between {MIN_IMAGE_SIDE} and {MAX_IMAGE_SIDE}, "
                 f"got {list(self.image_shape)}")
        _require(self.num_classes >= 0, f"model.num_classes must be >= 0, got {self.num_classes}")
        _require(self.num_classes >= 2 or not self.is_conditional,
                 f"a conditional model needs labels of at least 2 classes, but "
                 f"model.num_classes is {self.num_classes}")
        _require(self.logistic_components >= 1,
                 f"model.logistic_components must be >= 1, got {self.logistic_components}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Negative ELBO = recon + beta * KL, with optional KL warm-up and free bits; or the
    K-sample importance-weighted bound (IWAE), optionally with DReG gradients."""

    kind: Bound = "elbo"
    k: int = 1  # importance samples per image of the iwae bounds
    # 0.5 by measurement on the default run (16 epochs; README, "The default run"): there
    # beta trades likelihood for sample quality. The gmm sampler's FID at beta 0.35 / 0.5 /
    # 0.55 / 0.6 / 0.7: 25.9 / 25.1 / 31.5 / 31.4 / 36.3; the NLL falls by 2.1 nats from
    # 0.35 to 0.5 and by 0.2 more at 0.55. beta = 1 is the true ELBO; configs/ presets set it.
    beta: float = 0.5
    warmup_epochs: float = 0.0  # beta rises linearly from 0 over this many epochs
    free_bits: float = 0.0  # nats per latent dimension below which the KL is not penalised

    def __post_init__(self):
        _require(self.beta >= 0, f"objective.beta must be >= 0, got {self.beta}")
        _require(self.warmup_epochs >= 0,
                 f"objective.warmup_epochs must be >= 0, got {self.warmup_epochs}")
        _require(self.free_bits >= 0, f"objective.free_bits must be >= 0, got {self.free_bits}")
        _require(self.k >= 1, f"objective.k must be >= 1, got {self.k}")
        _require(self.kind != "elbo" or self.k == 1,
                 f"objective.k is the sample count of the iwae bounds; the elbo uses one "
                 f"(got k={self.k}: use --objective iwae)")
        _require(self.kind == "elbo" or self.free_bits == 0,
                 "free bits apply to the elbo only, not to the iwae bounds")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the machine it runs on."""

    # The default recipe (warm-up to 3e-3, cosine decay, beta2 0.99, batch 256) trains the
    # default model in under two minutes on a 2-core AVX2 CPU: benchmarks/default_run.py.
    epochs: int = 16
    # A wall-clock budget in seconds for the epochs (steps and validation); 0: off. When set,
    # `epochs` is fitted to the throughput of the first steps (see training/budget.py).
    time_budget: float = 0.0
    batch_size: int = 256
    lr: float = 3e-3
    optimizer: Optimizer = "adam"
    adam_beta2: float = 0.99  # decay of Adam's second-moment estimate
    weight_decay: float = 0.0
    schedule: Schedule = "cosine"
    lr_warmup_epochs: float = 0.3  # the learning rate rises linearly over this many epochs
    seed: int = 0
    device: Device = "auto"
    threads: int = 0  # CPU threads for torch (0: torch's default)
    precision: Precision = "auto"  # auto: bf16 autocast where the hardware has it, else fp32
    compile: bool = False  # torch.compile the loss (forward and backward)
    skip_nonfinite: bool = False  # skip updates with a non-finite loss or gradient, not stop
    skip_threshold: float = 0.0  # also skip updates whose gradient norm exceeds this (0: off)
    grad_clip: float = 0.0  # clip the gradient norm to this (0: off)
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off)
    nll_every: int = 0  # epochs between importance-sampled test NLL estimates (0: never)
    nll_k: int = 100  # importance samples per image of those estimates
    nll_images: int = 1000  # test images they use (reported only, never used for selection)
    sample_grid: int = 10  # side of the per-epoch sample grid (samples/epoch_NNN.png)

    def __post_init__(self):
        _require(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        _require(self.time_budget >= 0,
                 f"train.time_budget must be >= 0 seconds, got {self.time_budget}")
        _require(self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size}")
        _require(self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        _require(0 <= self.adam_beta2 < 1,
                 f"train.adam_beta2 must be in [0, 1), got {self.adam_beta2}")
        _require(0 <= self.lr_warmup_epochs <= self.epochs,
                 f"train.lr_warmup_epochs must be between 0 and train.epochs ({self.epochs}), "
                 f"got {self.lr_warmup_epochs}")
        _require(self.weight_decay >= 0,
                 f"train.weight_decay must be >= 0, got {self.weight_decay}")
        _require(self.threads >= 0, f"train.threads must be >= 0, got {self.threads}")
        _require(self.skip_threshold >= 0,
                 f"train.skip_threshold must be >= 0, got {self.skip_threshold}")
        _require(self.grad_clip >= 0, f"train.grad_clip must be >= 0, got {self.grad_clip}")
        _require(0 <= self.ema < 1, f"train.ema must be in [0, 1), got {self.ema}")
        _require(self.nll_every >= 0, f"train.nll_every must be >= 0, got {self.nll_every}")
        _require(self.nll_k >= 1, f"train.nll_k must be >= 1, got {self.nll_k}")
        _require(self.nll_images >= 1,
                 f"train.nll_images must be >= 1, got {self.nll_images}")
        _require(1 <= self.sample_grid <= 32,
                 f"train.sample_grid must be between 1 and 32, got {self.sample_grid}")


@dataclass(frozen=True)
class Config:
    """Everything that defines a training run. Saved as `config.json` in the run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        _require(self.objective.kind != "iwae-dreg" or self.model.arch != "hvae",
                 "iwae-dreg gradients are for one-layer models; train a hvae with iwae")
        _require(self.data.mode != "binarized" or self.model.likelihood in ("auto", "bernoulli"),
                 f"binarized pixels are 0 or 1: they need the bernoulli likelihood, not "
                 f"{self.model.likelihood}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Build a config from nested dicts; missing keys take defaults, unknown keys fail."""
        return _build(cls, values, prefix="")

    def replace(self, overrides: dict[str, Any]) -> Config:
        """A copy with dotted overrides applied, e.g. `{"model.latent_dim": 32}`."""
        nested = self.to_dict()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in nested or not key or "." in key:
                raise ConfigError(f"unknown config key '{dotted}' (expected section.key, "
                                  f"sections: {', '.join(nested)})")
            nested[section][key] = value
        return Config.from_dict(nested)


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or 'root'}' must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)} "
                          f"(known: {', '.join(prefix + n for n in sorted(names))})")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(prefix + name, hint, value)
    return cls(**kwargs)


def _check_type(key: str, hint: Any, value: Any) -> Any:
    """Return `value` converted to the field's type, or raise a ConfigError naming the key."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; "
                              f"got {value!r}")
        return value
    if origin is tuple:
        item = typing.get_args(hint)[0]  # tuple[int, ...], tuple[str, ...], tuple[int, int]
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, item) and not isinstance(v, bool) for v in value):
            kind = "integers" if item is int else "strings"
            raise ConfigError(f"{key} must be a list of {kind}, got {value!r}")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise AssertionError(f"unhandled config type {hint} for {key}")


def choices(section: type, name: str) -> tuple[str, ...]:
    """The allowed values of a `Literal` field, e.g. `choices(ModelConfig, "arch")`."""
    return typing.get_args(typing.get_type_hints(section)[name])


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into nested dicts (validated later by `Config.from_dict`)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse `section.key=value`; the value is read as TOML (`32`, `0.5`, `true`, `[32, 64]`)
    and falls back to a plain string (`mlp`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def load_config(path: str | Path) -> Config:
    """Load a run's `config.json` or a TOML preset."""
    path = Path(path)
    if path.suffix == ".toml":
        return Config.from_dict(load_toml(path))
    try:
        return Config.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
