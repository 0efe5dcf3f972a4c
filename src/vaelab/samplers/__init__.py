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
from .mixture import EM_ITERATIONS, GaussianMixture

SAMPLERS = ("prior", "gmm")
DEFAULT_SAMPLER = "gmm"  # measured against the prior in benchmarks/default_run.py
# The mixture's default temperature: its codes drawn with 0.8 times the fitted spread decode
# to more legible digits and a lower FID than at 1 (README, "Samplers"); the prior's is 1.
GMM_TEMPERATURE = 0.8
MIXTURE_FILE = "gmm.safetensors"
FIT_IMAGES = 60_000  # at most this many training images (all 55,000 of MNIST's) give the
#                      codes the mixture is fitted to; on the default run, at temperature 0.8:
#                      50 components on 20,000 codes: FID 33.5; 50 on 55,000: 30.8;
#                      100 on 20,000: 31.0; 100 on 55,000: 24.2 (benchmarks/mixture_fit.py)
FIT_WORK = 55_000 * 32 ** 2  # codes x units^2 of that fit: an EM iteration costs codes x
#                              components x units^2, so wider codes are fitted to fewer
MIN_FIT_IMAGES = 10_000
COMPONENTS = 100  # mixture components (per class, for a conditional model: 10)
CLASS_COMPONENTS = 10
FIT_SEED = 0

__all__ = ["SAMPLERS", "DEFAULT_SAMPLER", "GaussianMixture", "fit_mixture", "MixtureSampler",
           "attach"]


def fit_mixture(model: LatentVariableModel, images: Split, seed: int = FIT_SEED,
                components: int | None = None,
                iterations: int = EM_ITERATIONS) -> GaussianMixture:
    """Fit the mixture to the posterior means of `images` (as the model sees them: binarized
    already for a binarized run). A conditional model gets one mixture per class."""
    mu, _ = encode_split(model, images)  # (N, D): whitened codes of all layers for a hvae
    labels = images.labels.cpu() if model.conditional else None
    if components is None:
        components = CLASS_COMPONENTS if model.conditional else COMPONENTS
    what = f"posterior means of {len(images):,} training images" \
        + (f", {components} components per class" if model.conditional
           else f", {components} components")
    return GaussianMixture.fit(mu, labels, components, seed, what, iterations)


def fit_count(latent_dim: int) -> int:
    """How many training images the mixture is fitted to: FIT_IMAGES for codes of up to 32
    units (the default model's), proportionally fewer for wider codes, at least
    MIN_FIT_IMAGES, so that the fit takes seconds, not minutes."""
    return max(MIN_FIT_IMAGES, min(FIT_IMAGES, FIT_WORK // latent_dim ** 2))


def training_codes(data: Datasets, count: int) -> Split:
    """The first `count` training images of the run's split, binarized once (fixed seed)
    in binarized mode, as the encoder saw binarized images in training."""
    train = Split(data.train.images[:count], data.train.labels[:count])
    if data.dynamic_binarization:
        train = Split(binarize_once(train.images), train.labels)
    return train


class MixtureSampler:
    """The `gmm` sampler of a checkpoint: read from `folder/gmm.safetensors`, or fitted to
    the run's training images on first use and saved there (kept in memory only if the
    folder cannot be written, or with `save=False`, as by readers that must leave the run
    directory untouched, such as `vaelab serve`)."""

    def __init__(self, folder: Path, model: LatentVariableModel, cfg: Config, data_dir=None,
                 log=None, save: bool = True):
        self.folder, self.model, self.cfg, self.data_dir = Path(folder), model, cfg, data_dir
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.save = save
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
        data = load_dataset(self.cfg.data, self.data_dir)
        codes = training_codes(data, fit_count(self.model.latent_dim))
        self.log(f"vaelab: fitting the gmm sampler of {self.folder} once "
                 f"({len(codes):,} training codes) ...")
        was_training = self.model.training
        self.model.eval()
        mixture = fit_mixture(self.model, codes)
        self.model.train(was_training)
        if not self.save:
            return mixture
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
           log=None, save: bool = True) -> LatentVariableModel:
    """Give a model loaded from a checkpoint folder its `gmm` sampler, and make it the
    default of `model.sample`. `save=False`: a mixture fitted on first use stays in memory."""
    model.code_samplers = {"gmm": MixtureSampler(folder, model, cfg, data_dir, log, save)}
    model.default_sampler = DEFAULT_SAMPLER
    return model
