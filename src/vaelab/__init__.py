"""vaelab: variational autoencoders on MNIST-style images.

    import vaelab
    model = vaelab.load("runs/my-run")           # trained VAE, eval mode, on the CPU
    images = model.sample(16)                    # (16, 1, 28, 28) in [0, 1]
    sevens = cvae.sample(16, label=7)            # a conditional run draws the asked class

The package: data/ (images in), models/, training/, runs/ (run directories, checkpoints,
export), evaluation/, figures/, app/ (the explorer of `vaelab.serve`) and cli/, each
depending only on those before it.
"""

from .app import serve
from .config import Config, DataConfig, ModelConfig, ObjectiveConfig, TrainConfig
from .data import DATASETS, load_dataset
from .errors import VaelabError
from .models import VAE, HierarchicalVAE, LatentVariableModel, build_model
from .runs import export, load, load_decoder, load_encoder
from .training import train

__version__ = "0.1.0"
datasets = DATASETS

__all__ = [
    "Config", "DataConfig", "ModelConfig", "ObjectiveConfig", "TrainConfig", "DATASETS",
    "datasets", "load_dataset", "VaelabError", "export", "load_decoder", "load_encoder",
    "VAE", "HierarchicalVAE", "LatentVariableModel", "build_model", "load", "serve", "train",
    "__version__",
]
