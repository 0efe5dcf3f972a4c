"""Latent-space computations behind the figures: batched encoding, Gaussian-quantile grids,
interpolation paths and traversals, and the class labels a conditional model reads.
Plotting lives in `vaelab.figures`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.datasets import Split, eval_batches
from ..errors import ConfigError
from .generative import LatentVariableModel
from .likelihoods import kl_standard_normal

ENCODE_BATCH = 1000
NOT_CONDITIONAL = "this run is not conditional; train with --model cvae or --conditional"


# --- class labels: what a conditional model reads beside images and codes ------------------

def labels_if_conditional(model: LatentVariableModel,
                          labels: torch.Tensor) -> torch.Tensor | None:
    """`labels` (N,) or (N, Y) on the model's device for a conditional model; None for an
    unconditional one, which takes no labels. Every figure passes its labels through this."""
    if not model.conditional:
        return None
    return labels.to(next(model.parameters()).device)


def require_conditional(model: LatentVariableModel, what: str) -> None:
    """A user asked for something only a conditional model can do (`what`: the flag)."""
    if not model.conditional:
        raise ConfigError(f"{what}: {NOT_CONDITIONAL}")


def balanced_labels(model: LatentVariableModel, n: int) -> torch.Tensor | None:
    """(n,) labels cycling 0, 1, ..., C-1, 0, 1, ... for a conditional model, else None."""
    if not model.conditional:
        return None
    return torch.arange(n) % model.num_classes


def blend_labels(first: int, last: int, steps: int, num_classes: int) -> torch.Tensor:
    """(steps, C) class weights moving linearly from one-hot `first` to one-hot `last`, the
    label path that goes with a latent path between two classes."""
    t = torch.linspace(0, 1, steps)[:, None]  # (steps, 1)
    eye = torch.eye(num_classes)
    return (1 - t) * eye[first] + t * eye[last]


def path_labels(model: LatentVariableModel, first: int, last: int,
                steps: int) -> torch.Tensor | None:
    """`blend_labels` for a conditional model; None for an unconditional one."""
    if not model.conditional:
        return None
    return blend_labels(first, last, steps, model.num_classes)


def class_index(value: str | int, classes: Sequence[str], flag: str = "--digit") -> int:
    """A class given by number (0..C-1) or by name, case-insensitive ("7", "sneaker")."""
    text = str(value).strip()
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    for i, name in enumerate(classes):
        if text.casefold() == name.casefold():
            return i
    valid = ", ".join(f"{i} ({name})" if name != str(i) else name
                      for i, name in enumerate(classes))
    raise ConfigError(f"{flag} must be a class number or name, one of: {valid}; got {text!r}")


@torch.no_grad()
def encode_split(model: LatentVariableModel, split: Split,
                 batch_size: int = ENCODE_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances of a whole split, (N, D) each, in batched passes.
    A conditional model encodes each image with its own (true) label."""
    device = next(model.parameters()).device
    mus, logvars = [], []
    for x, y in eval_batches(split, batch_size):
        mu, logvar = model.encode(x.to(device), labels_if_conditional(model, y))
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    return torch.cat(mus), torch.cat(logvars)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean KL of each latent dimension over the data, (N, D) -> (D,) nats."""
    return kl_standard_normal(mu, logvar).mean(0)


def gaussian_quantiles(n: int) -> torch.Tensor:
    """n values of z at the centres of n equal-probability bins of N(0, 1):
    Phi^-1((i + 0.5) / n), i = 0..n-1 (the spacing of Kingma & Welling 2014, Fig. 4)."""
    p = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.distributions.Normal(0.0, 1.0).icdf(p).float()


def manifold_latents(n: int, latent_dim: int, dims: tuple[int, int]) -> torch.Tensor:
    """(n*n, D) latents on a grid over two dimensions, the others held at 0.

    Row-major, top row first: the vertical dimension decreases down the rows, so the
    picture reads like a plot with z increasing upwards and to the right.
    """
    x_dim, y_dim = dims
    values = gaussian_quantiles(n)
    z = torch.zeros(n, n, latent_dim)
    z[:, :, x_dim] = values[None, :]
    z[:, :, y_dim] = values.flip(0)[:, None]
    return z.reshape(n * n, latent_dim)


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int, mode: str) -> torch.Tensor:
    """(D,), (D,) -> (steps, D), from a to b inclusive.

    slerp follows the great circle between the two codes (Shoemake 1985; White 2016,
    "Sampling Generative Networks"), keeping norms typical of the Gaussian prior.
    """
    t = torch.linspace(0, 1, steps)[:, None]  # (steps, 1)
    if mode == "linear":
        return (1 - t) * a + t * b
    if mode != "slerp":
        raise ConfigError(f"interpolation mode must be linear or slerp, got {mode!r}")
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp(min=1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-6:  # (anti)parallel codes: the great circle is undefined
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def traversal_latents(base: torch.Tensor, dims: list[int], values: torch.Tensor) -> torch.Tensor:
    """(D,) base code -> (len(dims) * len(values), D): row r sets dimension dims[r] to each
    value in turn, keeping the base image's code elsewhere."""
    z = base.repeat(len(dims), len(values), 1)  # (R, V, D)
    for row, dim in enumerate(dims):
        z[row, :, dim] = values
    return z.reshape(-1, base.numel())


def class_means(mu: torch.Tensor, labels: torch.Tensor, label: int) -> torch.Tensor:
    """The mean posterior code of one class, (N, D) -> (D,)."""
    chosen = mu[labels.cpu() == label]
    if not len(chosen):
        raise ConfigError(f"class {label} does not occur in the test set")
    return chosen.mean(0)
