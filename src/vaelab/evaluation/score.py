"""Anomaly scoring: how unlike a run's training data an image is, by the model's own bound.

The score of an image is its negative ELBO in nats, -L_1 = E_q[-log p(x|z)] + KL(q(z|x) ||
p(z)), with one posterior sample; with K > 1 it is the importance-sampled -L_K (Burda et al.
2016, eq. 8), a tighter upper bound on -log p(x). Both are upper bounds on -log p(x), so a
high score means the model finds the image unlikely. Likelihood-based out-of-distribution
detection is known to fail for some pairs of datasets (Nalisnick et al. 2019, "Do deep
generative models know what they don't know?"); check it on outliers of your own.

An image is flagged when its score is above a threshold: the `quantile` (e.g. 0.99) of the
scores of the run's validation images under the same score, so about 1 - quantile of images
like the training data are flagged by chance.

Files are read at the run's image size and channels (`model.image_shape`); for MNIST runs
that is the MNIST convention: 28x28 grayscale, **white digits on a black background**,
values in [0, 1]. Files of another size are resized (the aspect ratio is not kept, and
digits are not re-centred the way MNIST's were); nothing is inverted, so a black
digit on white paper scores as an outlier, as it should for a model of MNIST. Binarized runs
see their inputs binarized once with the fixed seed of the test set (`binarize_once`).

Conditional models score x under a label: `label` if given; otherwise under every class,
keeping the lowest score. Each class's score is an upper bound on -log p(x|y), so the
minimum is an upper bound on -log max_y p(x|y): low when x looks like some class. With a
uniform class prior p(x) = (1/C) sum_y p(x|y) lies between max_y p(x|y) / C and
max_y p(x|y), so this ranks images as -log p(x) does to within log C (2.3 nats for ten
classes).
"""

from __future__ import annotations

import dataclasses
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import Config
from ..data.datasets import (
    EVAL_BINARIZE_SEED,
    Split,
    binarize_once,
    load_dataset,
    to_float,
)
from ..data.folders import open_image
from ..errors import ConfigError, DataError
from ..models.generative import LatentVariableModel
from ..models.iwae import iwae_bound
from .reference_cache import Reference, cached_reference, file_name

BATCH = 500  # images per scoring pass
MNIST_SHAPE = (1, 28, 28)
FALLBACK_VAL = 5000  # held-out images used for the threshold of a run trained with val_size 0


@dataclass(frozen=True)
class LoadedImages:
    """Image files read in the MNIST convention, and the inputs that could not be read."""

    images: torch.Tensor  # (N, C, H, W) uint8 in 0..255
    paths: list[Path]
    resized: list[Path]  # the files not of the run's image size
    unreadable: list[tuple[Path, str]] = dataclasses.field(default_factory=list)  # and why
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) they were read in


def image_files(paths: list[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files as given; each directory expands to the image files directly inside it, sorted
    by name (hidden files skipped). Also returns the inputs that are no image file, and why:
    a missing path, an empty folder, a device or pipe."""
    from PIL import Image

    extensions = {ext.lower() for ext in Image.registered_extensions()}
    files, problems = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file()
                           and not p.name.startswith(".") and p.suffix.lower() in extensions)
            files += found
            if not found:
                problems.append((path, "no image files in this folder"))
        elif path.is_file():
            files.append(path)
        elif path.exists():  # reading a pipe could block: name what it is instead
            problems.append((path, f"not an image file ({_kind(path)})"))
        else:
            problems.append((path, "no such file or folder"))
    return files, problems


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    kinds = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
             stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def read_image(path: Path, shape: tuple[int, int, int] = MNIST_SHAPE
               ) -> tuple[np.ndarray, bool]:
    """One file -> (C, H, W) uint8 in the run's `shape` (grayscale or RGB), and whether it
    had to be resized. Transparent pixels count as black background."""
    from PIL import Image

    channels, height, width = shape
    image = open_image(path, channels)
    resized = image.size != (width, height)
    if resized:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    return (pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)), resized


def load_images(paths: list[str | Path], shape: tuple[int, int, int] = MNIST_SHAPE
                ) -> LoadedImages:
    """Read image files (any format Pillow reads; folders expand to their image files) in
    the run's image `shape`. The inputs that cannot be read are kept in `unreadable`, so
    that the others can be scored; a DataError names them when none can be read at all."""
    files, unreadable = image_files(paths)
    pixels, read, resized = [], [], []
    for path in files:
        try:
            image, was_resized = read_image(path, shape)
        except DataError as e:
            unreadable.append((path, str(e).removeprefix(f"{path}: ")))
            continue
        pixels.append(image)
        read.append(path)
        if was_resized:
            resized.append(path)
    if not pixels:
        raise DataError(unreadable_line(unreadable, 0) if len(unreadable) > 1 else
                        f"{unreadable[0][0]}: {unreadable[0][1]}")
    images = torch.from_numpy(np.stack(pixels))  # (N, C, H, W) uint8
    return LoadedImages(images, read, resized, unreadable, tuple(shape))


def unreadable_line(unreadable: list[tuple[Path, str]], scored: int) -> str:
    """One line for inputs that could not be scored."""
    named = "; ".join(f"{path}: {why}" for path, why in unreadable[:3])
    more = f"; and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
    return (f"{len(unreadable)} input{'s' if len(unreadable) > 1 else ''} could not be read"
            f"{f' (the other {scored} scored)' if scored else ''}: {named}{more}")


def model_inputs(images: torch.Tensor, cfg: Config) -> torch.Tensor:
    """uint8 images (N, 1, 28, 28) -> floats in [0, 1] as the run's test set is presented:
    binarized once with the test set's fixed seed for binarized runs (each image on its own,
    so its binarization does not depend on the other files), grayscale otherwise."""
    if cfg.data.mode == "binarized":
        images = torch.cat([binarize_once(image[None], EVAL_BINARIZE_SEED) for image in images])
    return to_float(images)


def protocol(cfg: Config) -> str:
    if cfg.data.mode == "binarized":
        return "binarized: inputs binarized once with the test set's fixed seed"
    return "grayscale: inputs scored as grayscale values in [0, 1]"


def score_name(k: int) -> str:
    return "negative ELBO" if k == 1 else f"importance-sampled NLL -L_K, K={k}"


@torch.no_grad()
def _score_under(model: LatentVariableModel, x: torch.Tensor, k: int,
                 generator: torch.Generator, y: torch.Tensor | None) -> torch.Tensor:
    """(B,) float64 nats of one batch under labels y (or none)."""
    if k > 1:
        return -iwae_bound(model, x, k, generator, y=y)
    noise = torch.randn(len(x), model.latent_dim, generator=generator, device=x.device)
    outputs = model(x, noise, y)
    recon = -model.likelihood.log_prob(x, outputs["out"])  # (B,) -log p(x|z)
    kl = outputs["kl_units"].sum(1)  # (B,) KL(q(z|x) || p(z)), summed over units
    return (recon + kl).double()


@torch.no_grad()
def score_images(model: LatentVariableModel, images: torch.Tensor, k: int = 1, seed: int = 0,
                 y: torch.Tensor | None = None, batch_size: int = BATCH,
                 progress: str | None = None) -> torch.Tensor:
    """Anomaly scores (N,) float64 in nats per image of images (N, 1, 28, 28) in [0, 1]:
    the negative ELBO (k = 1) or -L_K (k > 1), deterministic for a given seed.

    A conditional model scores each image under its label y (N,) if given, else under
    every class with the same noise, keeping the lowest score (see the module docstring).
    `progress` names a progress bar on stderr (shown on a terminal only)."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    scores, was_training = [], model.training
    model.eval()
    for start in tqdm(range(0, len(images), batch_size), desc=progress, unit="batch",
                      disable=None if progress else True, leave=False):
        x = images[start:start + batch_size].to(device)
        if not model.conditional:
            scores.append(_score_under(model, x, k, generator, None).cpu())
        elif y is not None:
            labels = y[start:start + batch_size].to(device)
            scores.append(_score_under(model, x, k, generator, labels).cpu())
        else:
            state, per_class = generator.get_state(), []
            for c in range(model.num_classes):
                generator.set_state(state)  # the same noise under every class
                labels = torch.full((len(x),), c, dtype=torch.long, device=device)
                per_class.append(_score_under(model, x, k, generator, labels))
            scores.append(torch.stack(per_class, 1).min(1).values.cpu())  # (B, C) -> (B,)
    model.train(was_training)
    return torch.cat(scores) if scores else torch.empty(0, dtype=torch.float64)


def reference_split(cfg: Config, data_dir=None, label: int | None = None) -> tuple[Split, str]:
    """The validation images a threshold is taken from (only class `label` if given), and a
    description of them. A run trained with val_size 0 has none: then the last 5,000 images
    of the fixed split order, which are the validation images of a default run."""
    data_cfg, source, where = cfg.data, "validation images", ""
    if cfg.data.val_size == 0:
        data_cfg = dataclasses.replace(cfg.data, val_size=FALLBACK_VAL, limit=0)
    data = load_dataset(data_cfg, data_dir)
    val = data.val
    if cfg.data.val_size == 0:
        held_out = 0 < cfg.data.limit <= len(data.train)  # trained on order[:limit] only
        source = "training images"
        where = (f" (the last {FALLBACK_VAL:,} in the fixed split order: the run has no "
                 f"validation set" + (")" if held_out else "; it trained on them, so the "
                                      "threshold is optimistic)"))
    if label is not None:
        chosen = val.labels == label
        val = Split(val.images[chosen], val.labels[chosen])
        source += f" of class {label}"
    return val, source + where


def reference_scores(model: LatentVariableModel, cfg: Config, data_dir=None, k: int = 1,
                     seed: int = 0, label: int | None = None, progress: bool = False
                     ) -> Reference:
    """Scores of the run's validation images (see `reference_split`), in the same protocol
    and under the same score as `score_images` gives the inputs. A conditional model scores
    them under `label` if given (only that class's images), else under the best class."""
    val, source = reference_split(cfg, data_dir, label)
    y = val.labels if label is not None else None
    bar = f"scoring {len(val):,} {source.split(' (')[0]} for the threshold" if progress else None
    return Reference(score_images(model, to_float(val.images), k, seed, y, progress=bar),
                     source)


def quantile_of(scores: torch.Tensor, quantile: float) -> float:
    """The `quantile` of the scores, interpolated linearly between order statistics (as
    numpy.quantile does)."""
    check_quantile(quantile)
    if len(scores) == 0:
        raise DataError("no reference images to choose a threshold from")
    return float(torch.quantile(scores.double(), quantile))


def threshold(model: LatentVariableModel, cfg: Config, data_dir=None, quantile: float = 0.99,
              k: int = 1, seed: int = 0, label: int | None = None) -> float:
    """The score above which an image is flagged: the `quantile` of the run's validation
    images' scores (nats)."""
    check_quantile(quantile)
    return quantile_of(reference_scores(model, cfg, data_dir, k, seed, label).scores, quantile)


def check_quantile(quantile: float) -> None:
    if not 0 < quantile < 1:
        raise ConfigError(f"--quantile must be between 0 and 1 (exclusive), got {quantile}")


def score_files(model: LatentVariableModel, cfg: Config, loaded: LoadedImages, k: int = 1,
                quantile: float = 0.99, seed: int = 0, label: int | None = None,
                data_dir=None, checkpoint: Path | None = None) -> dict[str, Any]:
    """Score image files and flag those above the validation quantile: a JSON-ready dict
    with the threshold, where it came from, and one entry per image. The validation scores
    are cached in the `checkpoint` folder when given (see `reference_cache`)."""
    check_quantile(quantile)
    if label is not None:
        if not model.conditional:
            raise ConfigError("--label is for conditional runs; this run is unconditional")
        if not 0 <= label < model.num_classes:
            raise ConfigError(f"--label must be a class between 0 and "
                              f"{model.num_classes - 1}, got {label}")
    x = model_inputs(loaded.images, cfg)
    y = torch.full((len(x),), label, dtype=torch.long) if label is not None else None
    scores = score_images(model, x, k, seed, y)
    reference, cached = cached_reference(
        checkpoint, file_name(k, seed, label),
        lambda: reference_scores(model, cfg, data_dir, k, seed, label, progress=True))
    limit = quantile_of(reference.scores, quantile)
    flagged = scores > limit
    return {"score": score_name(k), "k": k, "units": "nats per image",
            "protocol": protocol(cfg), "label": label, "quantile": quantile,
            "threshold": limit, "reference": reference.source,
            "reference_images": len(reference.scores), "reference_cached": cached,
            "flagged": int(flagged.sum()), "image_shape": list(loaded.shape),
            "resized": [str(p) for p in loaded.resized],
            "unreadable": [{"path": str(path), "reason": why} for path, why in loaded.unreadable],
            "images": [{"path": str(path), "score": score, "flagged": flag}
                       for path, score, flag in zip(loaded.paths, scores.tolist(),
                                                    flagged.tolist())]}


def format_report(results: dict[str, Any]) -> str:
    """What `vaelab score` prints: how it scored, one line per image (path, score in nats,
    flagged yes/no), then the threshold and how many were flagged."""
    under = "" if results["label"] is None else f" under label {results['label']}"
    lines = [f"score: {results['score']}{under}, nats per image (higher: less like the "
             f"training data); {results['protocol']}"]
    if results["resized"]:
        count = len(results["resized"])
        size = "x".join(map(str, results.get("image_shape", MNIST_SHAPE)[:0:-1]))
        lines.append(f"note: {count} image{'s' if count > 1 else ''} not {size}, resized to "
                     f"{size} (Lanczos): {', '.join(results['resized'][:3])}"
                     + (" ..." if count > 3 else ""))
    entries = results["images"]
    width = max(len("image"), *(len(e["path"]) for e in entries + results.get("unreadable", [])))
    lines.append(f"{'image':<{width}}  {'score':>9}  flagged")
    lines += [f"{e['path']:<{width}}  {e['score']:9.2f}  {'yes' if e['flagged'] else 'no'}"
              for e in entries]
    lines += [f"{e['path']:<{width}}  {'-':>9}  unreadable: {e['reason']}"
              for e in results.get("unreadable", [])]
    lines.append(f"threshold {results['threshold']:.2f} nats: the {results['quantile']:g} "
                 f"quantile of the scores of {results['reference_images']:,} "
                 f"{results['reference']}"
                 f"{' (cached)' if results.get('reference_cached') else ''}; "
                 f"flagged {results['flagged']} of {len(entries)}")
    return "\n".join(lines)
