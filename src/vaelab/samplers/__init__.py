"""What draws the codes that `sample` decodes.

- `prior`: the model's prior (N(0, I), or the learned mixture / class prior of one-layer
  models, or the hierarchical VAE's prior, which is N(0, I) in its whitened codes);
- `gmm`: a Gaussian mixture fitted after training to the posterior means of training images
  (`mixture.py`), stored beside the checkpoint's weights as `gmm.safetensors`. It is fitted
  at the end of training, or on first use for runs trained before it existed.

A model loaded from a run (`vaelab.load`) samples with `gmm` by default; a model built
in Python samples from its prior.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..config import Config
from ..data.datasets import Datasets, Split, binarize_once, load_dataset
from ..models.generative import LatentVariableModel
from ..models.latents import encode_split
from .mixture import GaussianMixture

SAMPLERS = ("prior", "gmm")
DEFAULT_SAMPLER = "gmm"  # measured against the prior in benchmarks/default_run.py
# The mixture's default temperature: its codes drawn with 0.8 times the fitted spread decode
# to more legible digits and a lower FID than at 1 (README, "Samplers"); the prior's is 1.
GMM_TEMPERATURE = 0.8
MIXTURE_FILE = "gmm.safetensors"
FIT_IMAGES = 20_000  # training images whose codes the mixture is fitted to (FID 32 at
#                      20,000 against 36 at 10,000 on the default run, 2.4 s more to fit)
COMPONENTS = 50  # mixture components (per class, for a conditional model: 10)
CLASS_COMPONENTS = 10
FIT_SEED = 0

__all__ = ["SAMPLERS", "DEFAULT_SAMPLER", "GaussianMixture", "fit_mixture", "MixtureSampler",
           "attach"]


def fit_mixture(model: LatentVariableModel, images: Split, seed: int = FIT_SEED,
                components: int | None = None) -> GaussianMixture:
    """Fit the mixture to the posterior means of `images` (as the model sees them: binarized
    already for a binarized run). A conditional model gets one mixture per class."""
    mu, _ = encode_split(model, images)  # (N, D): whitened codes of all layers for a hvae
    labels = images.labels.cpu() if model.conditional else None
    if components is None:
        components = CLASS_COMPONENTS if model.conditional else COMPONENTS
    what = f"posterior means of {len(images):,} training images" \
        + (f", {components} components per class" if model.conditional
           else f", {components} components")
    return GaussianMixture.fit(mu, labels, components, seed, what)


def training_codes(data: Datasets, count: int = FIT_IMAGES) -> Split:
    """The first `count` training images of the run's split, binarized once (fixed seed)
    in binarized mode, as the encoder saw binarized images in training."""
    train = Split(data.train.images[:count], data.train.labels[:count])
    if data.dynamic_binarization:
        train = Split(binarize_once(train.images), train.labels)
    return train


class MixtureSampler:
    """The `gmm` sampler of a checkpoint: read from `folder/gmm.safetensors`, or fitted to
    the run's training images on first use and saved there (kept in memory only if the
    folder cannot be written)."""

    def __init__(self, folder: Path, model: LatentVariableModel, cfg: Config, data_dir=None,
                 log=None):
        self.folder, self.model, self.cfg, self.data_dir = Path(folder), model, cfg, data_dir
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self._mixture: GaussianMixture | None = None

    @property
    def mixture(self) -> GaussianMixture:
        if self._mixture is None:
            path = self.folder / MIXTURE_FILE
            if path.is_file():
                self._mixture = GaussianMixture.load(path)
            else:
                self._mixture = self.fit_and_save()
        return self._mixture

    def fit_and_save(self) -> GaussianMixture:
        self.log(f"vaelab: fitting the gmm sampler of {self.folder} once "
                 f"({FIT_IMAGES:,} training codes) ...")
        was_training = self.model.training
        self.model.eval()
        mixture = fit_mixture(self.model, training_codes(load_dataset(self.cfg.data,
                                                                        self.data_dir)))
        self.model.train(was_training)
        try:
            mixture.save(self.folder / MIXTURE_FILE)
        except OSError as e:
            self.log(f"vaelab: could not save the gmm sampler in {self.folder} "
                     f"({e.strerror or e}); it is kept for this session only")
        return mixture

    def __call__(self, n: int, temperature: float | None, generator: torch.Generator | None,
                 y: torch.Tensor | None) -> torch.Tensor:
        device = next(self.model.parameters()).device
        temperature = GMM_TEMPERATURE if temperature is None else temperature
        return self.mixture.sample(n, temperature, generator, y, device)


def attach(model: LatentVariableModel, folder: Path, cfg: Config, data_dir=None,
           log=None) -> LatentVariableModel:
    """Give a model loaded from a checkpoint folder its `gmm` sampler, and make it the
    default of `model.sample`."""
    model.code_samplers = {"gmm": MixtureSampler(folder, model, cfg, data_dir, log)}
    model.default_sampler = DEFAULT_SAMPLER
    return model
