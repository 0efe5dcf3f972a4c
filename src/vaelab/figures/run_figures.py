"""The figures of a trained run, each one function from (model, data, options) to a file.
Both the CLI commands and the HTML report call these.

A conditional model reads a class label beside every image and code: the figures encode
test images with their own labels and decode with the labels the figure is about. They pass
labels to every model through `explore.labels_if_conditional` and its siblings, which give
None to an unconditional model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.datasets import Split, to_float
from ..data.images import grid, pairs, save_gif, save_png
from ..errors import ConfigError, RunError
from ..models import latents as explore
from ..models.generative import LatentVariableModel
from . import plots

PROJECTIONS = ("pca", "tsne", "umap")
LATENT_POINTS = 10_000  # test images in the latent scatter: all of MNIST's


def project(mu: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, tuple[str, str]]:
    """(N, D >= 2) codes -> (N, 2) points and axis names; 2-D codes are returned as they are."""
    if mu.shape[1] == 2:
        return mu, ("z[0]", "z[1]")
    if method == "pca":
        mean, axes, share = pca_plane(mu, seed)
        return (mu - mean) @ axes.T, pca_axis_names(share)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, init="pca", random_state=seed).fit_transform(mu), (
            "t-SNE 1", "t-SNE 2")
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ConfigError("--method umap needs the umap-learn package "
                              "(pip install umap-learn); pca and tsne work without it"
                              ) from None
        return umap.UMAP(random_state=seed).fit_transform(mu), ("UMAP 1", "UMAP 2")
    raise ConfigError(f"--method must be one of {', '.join(PROJECTIONS)}, got {method!r}")


def pca_plane(mu: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plane of the first two principal components of codes (N, D >= 2), fitted by
    scikit-learn: (mean (D,), axes (2, D) orthonormal, share of variance (2,)). A code z lies
    at (z - mean) @ axes.T in the plane; the point (u, v) is the code mean + u axes[0] +
    v axes[1]."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed).fit(mu)
    return pca.mean_, pca.components_, pca.explained_variance_ratio_


def pca_axis_names(share: np.ndarray) -> tuple[str, str]:
    return tuple(f"PC {i + 1} ({s * 100:.0f}% of variance)" for i, s in enumerate(share[:2]))


def latent_indices(n: int, points: int = LATENT_POINTS, seed: int = 0) -> list[int]:
    """Which of `n` test images the latent scatter shows: `points` of them (all, when there
    are at most that many), drawn with `seed`."""
    return _random_indices(n, points, seed)


def latent_plot(model: LatentVariableModel, cfg: Config, test: Split, classes, out: Path,
                method: str = "pca", points: int = LATENT_POINTS, seed: int = 0) -> Path:
    """The test set's posterior means, coloured by class."""
    index = latent_indices(len(test), points, seed)
    subset = Split(test.images[index], test.labels[index])
    mu, _ = explore.encode_split(model, subset)
    labels = subset.labels.cpu().numpy()
    if model.latent_dim == 1:  # one row per class, jittered so the points do not overlap
        jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, len(labels))
        xy, axes = np.stack([mu[:, 0].numpy(), labels + jitter], 1), ("z[0]", "class")
    else:
        xy, axes = project(mu.numpy(), method, seed)
    how = "" if model.latent_dim <= 2 else f", {method.upper()} of {model.latent_dim}-D codes"
    how += ", each encoded with its label" if model.conditional else ""
    return plots.latent_scatter(xy, labels, classes, out, f"Latent means of {len(subset):,} "
                                f"{cfg.data.dataset} test images{how}", axes,
                                class_rows=model.latent_dim == 1)


def manifold_plot(model: LatentVariableModel, out: Path, n: int = 20,
                  dims: tuple[int, int] = (0, 1), label: int | None = None,
                  classes: Sequence[str] | None = None) -> Path:
    """Decode an n x n grid of Gaussian quantiles over two latent dimensions. A conditional
    model decodes the whole grid as class `label` (default: 0), named in the title."""
    if label is not None:
        explore.require_conditional(model, "--digit")
    label = label or 0
    if model.latent_dim < 2:
        raise ConfigError("the manifold needs at least 2 latent dimensions")
    if len(set(dims)) != 2 or not all(0 <= d < model.latent_dim for d in dims):
        raise ConfigError(f"--dims must be two different dimensions in 0..{model.latent_dim - 1}"
                          f", got {list(dims)}")
    images = _decode(model, explore.manifold_latents(n, model.latent_dim, dims),
                     torch.full((n * n,), label))
    others = "" if model.latent_dim == 2 else ", other dimensions at 0"
    which = f", class {_name(classes, label)}" if model.conditional else ""
    return plots.manifold(images, explore.gaussian_quantiles(n), dims, out,
                          f"Decoded latent grid over z[{dims[0]}], z[{dims[1]}]{others}{which}")


def interpolation_plot(model: LatentVariableModel, test: Split, out: Path, start: int | None = None,
                       end: int | None = None, from_class: int | None = None,
                       to_class: int | None = None, mode: str = "slerp", steps: int = 10,
                       gif: Path | None = None, seed: int = 0,
                       classes: Sequence[str] | None = None) -> Path:
    """Decode the path between two test images' codes (drawn with `seed` when not given),
    or between two class means. A conditional model encodes each test image with its own
    label and decodes the path with the two classes' one-hot labels blended linearly."""
    device = next(model.parameters()).device
    if from_class is not None or to_class is not None:
        if from_class is None or to_class is None:
            raise ConfigError("give both --from-class and --to-class")
        mu, _ = explore.encode_split(model, test)
        a, b = (explore.class_means(mu, test.labels, c) for c in (from_class, to_class))
        ends = from_class, to_class
        first, last = (f"class {_name(classes, c)} mean" for c in ends)
    else:
        start, end = pick_test_pair(len(test), start, end, seed)
        for i in (start, end):
            if not 0 <= i < len(test):
                raise ConfigError(f"test image index {i} is outside 0..{len(test) - 1}")
        labels = test.labels[[start, end]]
        with torch.no_grad():
            mu, _ = model.encode(to_float(test.images[[start, end]]).to(device),
                                 explore.labels_if_conditional(model, labels))
        a, b = mu.cpu()
        ends = tuple(labels.tolist())
        first, last = f"test #{start}", f"test #{end}"
        if model.conditional:
            first, last = (f"{t} ({_name(classes, c)})" for t, c in zip((first, last), ends))
    if steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {steps}")
    y = explore.path_labels(model, *ends, steps)  # (steps, C) blended, or None
    images = _decode(model, explore.interpolate(a, b, steps, mode), y)
    if gif is not None:
        save_gif(images, gif)
    blended = ", class labels blended linearly" if model.conditional else ""
    return plots.strip(images, out, f"{mode} interpolation, {steps} steps{blended}", first,
                       last)


def traversal_plot(model: LatentVariableModel, test: Split, out: Path, index: int | None = None,
                   top: int = 10, steps: int = 9, limit: float = 3.0, seed: int = 0,
                   classes: Sequence[str] | None = None) -> Path:
    """Vary each of the `top` dimensions with the most KL from -limit to +limit around the
    code of one test image (drawn with `seed` when `index` is None). A conditional model
    encodes and decodes every image of the figure with that test image's label."""
    index = pick_test_index(len(test), index, seed)
    if not 0 <= index < len(test):
        raise ConfigError(f"test image index {index} is outside 0..{len(test) - 1}")
    mu, logvar = explore.encode_split(model, test)
    kl = explore.kl_per_dimension(mu, logvar)  # (D,)
    dims = kl.argsort(descending=True)[:top].tolist()
    values = torch.linspace(-limit, limit, steps)
    z = explore.traversal_latents(mu[index], dims, values)  # (len(dims) * steps, D)
    label = int(test.labels[index])
    images = _decode(model, z, torch.full((len(z),), label))
    labels = [f"z[{d}]  KL {kl[d]:.2f} nats" for d in dims]
    shown = "all" if len(dims) == model.latent_dim else f"the {len(dims)} most active of"
    which = f" (class {_name(classes, label)})" if model.conditional else ""
    return plots.traversal(images, labels, values, out,
                           f"Traversal of {shown} {model.latent_dim} dimensions "
                           f"around test #{index}{which}")


def style_plot(model: LatentVariableModel, test: Split, classes: Sequence[str], out: Path,
               count: int = 8, seed: int = 0) -> Path:
    """Style transfer with a conditional model (Kingma et al. 2014, "Semi-supervised
    learning with deep generative models", Fig. 1): encode `count` random test images with
    their own labels, then decode each code under every class's label. The code keeps
    what the label does not say (slant, stroke width), so each row shows one style written
    as every class."""
    explore.require_conditional(model, "the style figure")
    if not 0 < count <= len(test):
        raise ConfigError(f"--count must be in 1..{len(test)}, got {count}")
    device = next(model.parameters()).device
    index = _random_indices(len(test), count, seed)
    x, labels = to_float(test.images[index]).to(device), test.labels[index]
    with torch.no_grad():
        mu, _ = model.encode(x, labels.to(device))  # (count, D)
    num_classes = model.num_classes
    z = mu.repeat_interleave(num_classes, dim=0)  # (count * C, D): each code C times
    y = torch.arange(num_classes).repeat(count)  # (count * C,): 0..C-1 for each code
    rows = [f"test #{i}: {_name(classes, c)}" for i, c in zip(index, labels.tolist())]
    return plots.style_grid(x.cpu(), _decode(model, z, y), rows, classes, out,
                            f"Style transfer: {count} test images' codes decoded as every class")


@torch.no_grad()
def _decode(model: LatentVariableModel, z: torch.Tensor,
            labels: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D) latents on any device -> (N, 1, 28, 28) mean images in [0, 1] on the CPU.
    `labels` (N,) or (N, C) reach a conditional model only."""
    device = next(model.parameters()).device
    y = explore.labels_if_conditional(model, labels) if labels is not None else None
    return model.images(z.to(device), y).cpu()


def _name(classes: Sequence[str] | None, label: int) -> str:
    """A class's name when the class names are known, else its number."""
    return classes[label] if classes else str(label)


def _random_indices(n: int, count: int, seed: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].tolist()


def pick_test_pair(n: int, start: int | None, end: int | None, seed: int) -> tuple[int, int]:
    """The two test images of an interpolation: those given, the others drawn with `seed`
    from a test set of `n` images (as `interpolation_plot` draws them)."""
    drawn = _random_indices(n, 2, seed)
    return (drawn[0] if start is None else start), (drawn[1] if end is None else end)


def pick_test_index(n: int, index: int | None, seed: int) -> int:
    """The base test image of a traversal: `index`, else one drawn with `seed`."""
    return _random_indices(n, 1, seed)[0] if index is None else index


def read_metrics(run: Path) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise RunError(f"{run} has no metrics.jsonl (not a vaelab run directory?)") from None
    except json.JSONDecodeError as e:
        raise RunError(f"{path}: unreadable ({e})") from None
    if not records:
        raise RunError(f"{path} is empty: the run has not finished an epoch yet")
    return records


def curves_plot(runs: list[Path], out: Path) -> Path:
    return plots.curves([(Path(run).name, read_metrics(run)) for run in runs], out)


def reconstruction_image(model: LatentVariableModel, test: Split, out: Path, rows: int = 5,
                         cols: int = 10, seed: int = 0, scale: int = 2) -> Path:
    """Random test images (odd rows) above their reconstructions (even rows)."""
    count = rows * cols
    if count > len(test):
        raise ConfigError(f"--rows x --cols asks for {count} images; the test set has "
                          f"{len(test)}")
    index = _random_indices(len(test), count, seed)
    x = to_float(test.images[index]).to(next(model.parameters()).device)
    y = explore.labels_if_conditional(model, test.labels[index])  # each image's own label
    return save_png(grid(pairs(x, model.reconstruct(x, y), cols).cpu(), ncol=cols), out,
                    scale=scale)


def class_samples(model: LatentVariableModel, classes: Sequence[str], out: Path,
                  columns: int = 15, temperature: float | None = None, seed: int = 0,
                  scale: int | None = None, sampler: str | None = None) -> Path:
    """A grid of samples of a conditional model, one row per class, named at the left."""
    explore.require_conditional(model, "--grid-by-class")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    labels = torch.arange(model.num_classes).repeat_interleave(columns)  # (C * columns,)
    images = model.sample(len(labels), temperature, generator, label=labels,
                          sampler=sampler).cpu()
    source = {"prior": "the prior", "gmm": "the class's Gaussian mixture"}[
        sampler or model.default_sampler]
    spread = f" (temperature {temperature:g})" if temperature is not None else ""
    return plots.class_grid(images, classes, out, f"Samples by class, {columns} per class",
                            xlabel=f"draws from {source}{spread}, decoded with the row's label",
                            scale=scale)
