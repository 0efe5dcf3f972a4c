"""The model family: nn blocks, likelihoods, priors, the one-layer VAE, the hierarchical VAE,
the `LatentVariableModel` interface they share, and the bounds that are a property of a
model (the importance-weighted bound). Knows nothing of training, evaluation or figures."""

from .generative import LatentVariableModel
from .hvae import HierarchicalVAE
from .vae import VAE, build_model

__all__ = ["LatentVariableModel", "HierarchicalVAE", "VAE", "build_model"]
