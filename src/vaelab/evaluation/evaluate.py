"""`vaelab evaluate`: test-set numbers to paper standard, written to RUN_DIR/eval.json.

- ELBO terms (nats per image) and bits per dimension, with the data protocol stated;
- importance-sampled NLL (IWAE bound, Burda et al. 2016) with its standard error;
- FID, classifier score and class histogram in the feature space of vaelab's MNIST
  classifier (see `classifier.py`; not comparable with Inception-FID numbers);
- for conditional models, how often that classifier sees the class the sampler was asked
  for (conditional accuracy, as in the CVAE evaluations of Sohn et al. 2015);
- latent quality: active units, linear-probe and k-NN accuracy from the latent means.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..data.datasets import Datasets, Split, eval_batches, stored_splits, to_float
from ..errors import RunError
from ..models.generative import LatentVariableModel
from ..models.iwae import iwae_bound
from ..models.latents import balanced_labels, encode_split, labels_if_conditional
from ..runs.checkpoint import CONFIG, read_config, write_json
from ..samplers import SAMPLERS
from ..training.steps import evaluate_loss
from .classifier import features_and_probs, load_classifier
from .fid import classifier_score, frechet_distance

EVAL = "eval.json"
FID_SAMPLES = 10_000
BATCH = 1000
FID_NOTE = ("FID and classifier score use vaelab's own classifier of this dataset (128-D "
            "features), between model mean images and the test images as stored: "
            "comparable between vaelab runs on one dataset, not with Inception-FID numbers "
            "from papers")
CONDITIONAL_PER_CLASS = 1000  # samples of each class for the conditional accuracy
ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016), sec. 5.2: Cov_x(E_q[u]) > 0.01
LEGIBLE = 0.9  # classifier confidence above which a sample counts as legible
PROBE_TRAIN = 10_000  # training images whose latent means fit the probes


def bits_per_dim(nats: float, shape: tuple[int, ...]) -> float:
    """Nats per image -> bits per dimension (per pixel and channel): nats / (C H W ln 2)."""
    return nats / (math.prod(shape) * math.log(2))


def protocol(cfg: Config) -> str:
    if cfg.data.mode == "binarized":
        return (f"{cfg.data.dataset}, dynamically binarized training, test set binarized "
                f"once (fixed seed), {cfg.model.likelihood_name} likelihood: comparable with "
                f"published NLLs")
    return (f"{cfg.data.dataset} {cfg.data.mode} 8-bit values in [0, 1], "
            f"{cfg.model.likelihood_name} likelihood: NOT comparable with published NLLs on "
            f"binarized MNIST")


def nll(model: LatentVariableModel, split, k: int, seed: int, batch_size: int = 100,
        bf16: bool = False) -> dict[str, float]:
    """Mean -L_K over the split's images and its standard error over images, in nats."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    values = []
    started = time.perf_counter()
    for x, y in eval_batches(split, batch_size):
        values.append(-iwae_bound(model, x.to(device), k, generator, bf16=bf16,
                                  y=labels_if_conditional(model, y)).cpu())
    per_image = torch.cat(values)  # (N,) float64
    return {"nll": per_image.mean().item(),
            "nll_stderr": (per_image.std() / math.sqrt(len(per_image))).item(),
            "nll_k": k, "nll_images": len(per_image),
            "nll_precision": "bf16" if bf16 else "fp32",
            "nll_seconds": round(time.perf_counter() - started, 1)}


def latent_quality(model: LatentVariableModel, data: Datasets, seed: int) -> dict[str, float]:
    """Active units and how well the latent means predict the labels (unlabelled images:
    active units only)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    test_mu, _ = encode_split(model, data.test)
    active = int((test_mu.var(0) > ACTIVE_THRESHOLD).sum())
    if not data.classes:
        return {"active_units": active, "latent_dim": model.latent_dim}
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(data.train), generator=generator)[:PROBE_TRAIN]
    train = Split(data.train.images[index], data.train.labels[index])
    train_mu, _ = encode_split(model, train)
    x_train, y_train = train_mu.numpy(), train.labels.cpu().numpy()
    x_test, y_test = test_mu.numpy(), data.test.labels.cpu().numpy()
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    knn = KNeighborsClassifier(n_neighbors=5)
    return {"active_units": active, "latent_dim": model.latent_dim,
            "linear_probe_accuracy": float(linear.fit(x_train, y_train).score(x_test, y_test)),
            "knn_accuracy": float(knn.fit(x_train, y_train).score(x_test, y_test))}


@torch.no_grad()
def sample_quality(model: LatentVariableModel, cfg: Config, data_dir, seed: int,
                   n: int = FID_SAMPLES, log=print) -> dict[str, Any]:
    """For each sampler the model has: FID of n samples against the test images as stored,
    the classifier score, the legible fraction (samples the classifier assigns to one class
    with probability above 0.9) and the class histogram, all with vaelab's classifier.
    Unsuffixed keys are the default sampler's; the others' keys end in _<sampler>. Beside
    them: the train-vs-test FID floor and the real test images' score and legible fraction.
    A conditional model draws a balanced mix of classes, as the test set is."""
    classifier, info = load_classifier(cfg.data, data_dir, log=log)
    train, test = (split.images for split in stored_splits(cfg.data, data_dir)[:2])
    floor_index = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    f_test, p_test = features_and_probs(classifier, to_float(test))
    f_train, _ = features_and_probs(classifier, to_float(train[floor_index[:len(test)]]))
    results = {"sampler": model.default_sampler,
               "fid_train_vs_test": frechet_distance(f_train, f_test),
               "classifier_score_test": classifier_score(p_test),
               "legible_test": legible_fraction(p_test), "fid_samples": n,
               "classifier_test_accuracy": info["test_accuracy"], "fid_note": FID_NOTE}
    device = next(model.parameters()).device
    labels = balanced_labels(model, n)  # (n,) cycling 0..C-1, or None
    for sampler in [model.default_sampler, *[s for s in SAMPLERS if s != model.default_sampler
                                             and (s == "prior" or s in model.code_samplers)]]:
        generator = torch.Generator(device=device).manual_seed(seed)
        samples = torch.cat([model.sample(min(BATCH, n - i), generator=generator,
                                          label=None if labels is None else labels[i:i + BATCH],
                                          sampler=sampler).cpu()
                             for i in range(0, n, BATCH)])  # mean images (N, 1, 28, 28)
        f_samples, p_samples = features_and_probs(classifier, samples)
        suffix = "" if sampler == model.default_sampler else f"_{sampler}"
        counts = torch.bincount(p_samples.argmax(1), minlength=p_samples.shape[1])
        results.update({f"fid{suffix}": frechet_distance(f_samples, f_test),
                        f"classifier_score{suffix}": classifier_score(p_samples),
                        f"legible{suffix}": legible_fraction(p_samples),
                        f"sample_class_histogram{suffix}": counts.tolist()})
    return results


def legible_fraction(probs: torch.Tensor) -> float:
    """The fraction of images the classifier puts in one class with p > LEGIBLE."""
    return (probs.max(1).values > LEGIBLE).double().mean().item()


@torch.no_grad()
def conditional_accuracy(model: LatentVariableModel, classifier: torch.nn.Module,
                         per_class: int = CONDITIONAL_PER_CLASS,
                         seed: int = 0) -> dict[str, Any]:
    """Draw `per_class` samples of each class from a conditional model and classify them
    with vaelab's classifier: the fraction whose predicted class is the one asked for,
    overall and per class. A sampler that ignored its label would score about 1 / C."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    correct = []
    for label in range(model.num_classes):
        samples = torch.cat([model.sample(min(BATCH, per_class - i), generator=generator,
                                          label=label).cpu()
                             for i in range(0, per_class, BATCH)])  # (per_class, 1, 28, 28)
        _, probs = features_and_probs(classifier, samples)  # (per_class, C)
        correct.append((probs.argmax(1) == label).double().mean().item())
    return {"conditional_accuracy": sum(correct) / len(correct),
            "conditional_accuracy_per_class": correct,
            "conditional_samples_per_class": per_class}


def evaluate(model: LatentVariableModel, cfg: Config, data: Datasets, k: int = 1000, seed: int = 0,
             fid: bool = True, data_dir=None, bf16: bool = False, images: int = 0,
             log=print) -> dict[str, Any]:
    """All the numbers; see the module docstring. `images` limits the importance-sampled
    NLL to the first N test images (0: all), for models too slow to decode N x K times."""
    results: dict[str, Any] = {"protocol": protocol(cfg), "data_mode": cfg.data.mode}
    elbo = evaluate_loss(model, data.test, beta=1.0)
    results.update({"test_neg_elbo": elbo["loss"], "test_recon": elbo["recon"],
                    "test_kl": elbo["kl"],
                    "test_bits_per_dim": bits_per_dim(elbo["loss"], data.shape)})
    log(f"negative ELBO {elbo['loss']:.2f} nats; importance sampling with K={k} ...")
    subset = Split(data.test.images[:images], data.test.labels[:images]) if images else data.test
    results.update(nll(model, subset, k, seed, bf16=bf16))
    results["nll_bits_per_dim"] = bits_per_dim(results["nll"], data.shape)
    results.update(latent_quality(model, data, seed))
    if fid and not data.classes:
        log(f"no FID or classifier score: {cfg.data.dataset} has no classes to train "
            f"vaelab's classifier on")
    elif fid:
        log("sample quality: FID and classifier score ...")
        results.update(sample_quality(model, cfg, data_dir, seed, log=log))
        if model.conditional:
            log(f"conditional accuracy: {CONDITIONAL_PER_CLASS:,} samples per class ...")
            classifier, _ = load_classifier(cfg.data, data_dir, log=log)
            results.update(conditional_accuracy(model, classifier, seed=seed))
    return results


def write(run: Path, results: dict[str, Any]) -> Path:
    path = Path(run) / EVAL
    write_json(path, results)
    return path


COMPARE_COLUMNS = [  # (eval.json key, column title, format)
    ("test_neg_elbo", "test -ELBO", "{:.2f}"), ("test_kl", "rate", "{:.2f}"),
    ("test_recon", "distortion", "{:.2f}"), ("nll", "NLL", "{:.2f}"),
    ("nll_k", "K", "{}"), ("fid", "FID", "{:.2f}"),
    ("classifier_score", "class. score", "{:.2f}"), ("legible", "legible", "{:.3f}"),
    ("conditional_accuracy", "cond. accuracy", "{:.4f}"),
    ("active_units", "active units", "{}"),
    ("linear_probe_accuracy", "linear probe", "{:.3f}"),
    ("knn_accuracy", "k-NN", "{:.3f}")]


def data_mode(results: dict[str, Any]) -> str:
    """binarized or grayscale, also for eval.json files written before `data_mode` was."""
    if "data_mode" in results:
        return results["data_mode"]
    return "grayscale" if "grayscale" in results.get("protocol", "") else "binarized"


def read_evaluation(run: Path) -> tuple[dict[str, Any], Config]:
    """A run's eval.json and its config.json (for beta and the data protocol)."""
    path = Path(run) / EVAL
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{run} has no {EVAL}: run vaelab evaluate {run} first") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: unreadable ({e})") from None
    if not isinstance(results, dict):
        raise RunError(f"{path}: expected a JSON object of results")
    if not (Path(run) / CONFIG).is_file():
        raise RunError(f"{run} has no {CONFIG}: not a vaelab run directory")
    return results, read_config(Path(run))


def compare(runs: list[Path]) -> str:
    """One Markdown table of the evaluations of several runs (nats per image). Rate and
    distortion are the test KL and reconstruction terms (Alemi et al. 2018); beta is the
    KL weight each run was trained with."""
    header = ["run", "data", "beta", *[title for _, title, _ in COMPARE_COLUMNS]]
    rows = []
    for run in runs:
        results, cfg = read_evaluation(run)
        rows.append([Path(run).name, data_mode(results), f"{cfg.objective.beta:g}",
                     *[fmt.format(results[key]) if key in results
                                             else "-" for key, _, fmt in COMPARE_COLUMNS]])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def rate_distortion_points(runs: list[Path]) -> list[dict[str, Any]]:
    """One point per run for the rate-distortion plane of Alemi et al. (2018, "Fixing a
    Broken ELBO", fig. 1): rate R = test KL(q(z|x) || p(z)), distortion D = test
    E_q[-log p(x|z)], nats per image, so -ELBO = R + D. Sorted by beta. Raises RunError for
    runs whose distortions are not comparable (another dataset, data protocol or
    likelihood) or that lack the two terms."""
    points = []
    for run in runs:
        results, cfg = read_evaluation(run)
        missing = [key for key in ("test_kl", "test_recon") if key not in results]
        if missing:
            raise RunError(f"{Path(run) / EVAL} lacks {', '.join(missing)}: run vaelab "
                           f"evaluate {run} again")
        points.append({"name": Path(run).name, "beta": cfg.objective.beta,
                       "rate": float(results["test_kl"]),
                       "distortion": float(results["test_recon"]),
                       "protocol": f"{cfg.data.dataset}, {data_mode(results)}, "
                                   f"{cfg.model.likelihood_name} likelihood"})
    protocols: dict[str, list[str]] = {}
    for point in points:
        protocols.setdefault(point["protocol"], []).append(point["name"])
    if len(protocols) > 1:
        groups = "; ".join(f"{p}: {', '.join(names)}" for p, names in protocols.items())
        raise RunError(f"cannot put runs of different data protocols on one rate-distortion "
                       f"plot, their distortions are not comparable ({groups}); plot each "
                       f"protocol separately")
    return sorted(points, key=lambda point: point["beta"])


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(_cell, value)) + "]"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def format_table(results: dict[str, Any]) -> str:
    """A plain two-column table for the terminal."""
    width = max(map(len, results))
    lines = []
    for key, value in results.items():
        lines.append(f"{key:<{width}}  {_cell(value)}")
    return "\n".join(lines)
