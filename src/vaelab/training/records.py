"""What a training run leaves behind after each epoch and at its end: metric lines,
TensorBoard scalars, the epoch's sample grid, the test NLL curve, and summary.json.

An epoch's records are written only once its checkpoint is durable, and its metrics.jsonl
line comes last: a run never shows an epoch that no checkpoint holds, and an epoch whose line
is missing (killed between the two) has its records written again on resume.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from .. import samplers
from ..config import Config, TrainConfig
from ..data.datasets import Datasets, Split, eval_batches
from ..data.images import grid, save_png
from ..errors import RunError, TrainingDiverged
from ..models.generative import LatentVariableModel
from ..models.iwae import iwae_bound
from ..runs import rundir
from ..runs.checkpoint import load_weights, resolve, write_json
from .state import Progress
from .steps import EVAL_BATCH_SIZE, TERMS, VAL_NOISE_SEED, evaluate_loss


def test_nll(model: LatentVariableModel, test, tc: TrainConfig, device) -> float:
    """-L_K on the first `nll_images` test images: the NLL-vs-training-time curve. Reported
    only; model selection never sees the test set."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(VAL_NOISE_SEED)
    total = 0.0
    subset = Split(test.images[:tc.nll_images], test.labels[:tc.nll_images])
    for x, y in eval_batches(subset, EVAL_BATCH_SIZE):
        x, y = x.to(device), y.to(device) if model.conditional else None
        total += -iwae_bound(model, x, tc.nll_k, generator, y=y).sum().item()
    model.train()
    return total / len(subset)


def epoch_record(progress: Progress, train_means: dict[str, float],
                 val_means: dict[str, float], nll: float | None, tc: TrainConfig, lr: float,
                 beta: float, skipped: int | None, seconds: float, images: int) -> dict[str, Any]:
    """One line of metrics.jsonl: the epoch's mean terms (nats per image), the test NLL when
    it was due, the schedule's lr and beta at the epoch's last step, skipped images (when
    updates may be skipped) and speed."""
    return {"epoch": progress.epoch, "step": progress.step,
            **{f"train_{k}": v for k, v in train_means.items()},
            **{f"val_{k}": v for k, v in val_means.items()},
            **({"test_nll": nll, "test_nll_k": tc.nll_k} if nll is not None else {}),
            "lr": lr, "beta": beta,
            **({"skipped_images": skipped} if skipped is not None else {}),
            "epoch_seconds": round(seconds, 3),
            "images_per_second": round(images / seconds, 1)}


def epoch_line(record: dict[str, Any], epochs: int, improved: bool, samples: Path) -> str:
    """The line printed after each epoch."""
    def terms(split: str) -> dict[str, float]:
        return {k: record[f"{split}_{k}"] for k in TERMS if f"{split}_{k}" in record}

    val = terms("val")
    skipped, nll = record.get("skipped_images"), record.get("test_nll")
    return (f"epoch {record['epoch']:3d}/{epochs}  {format_terms('train', terms('train'))}  "
            f"{format_terms('val', val) if val else 'no validation set'}  "
            f"{record['epoch_seconds']:5.1f}s {record['images_per_second']:,.0f} img/s"
            + (f"  skipped {skipped} images" if skipped else "")
            + (f"  test NLL {nll:.2f} (K={record['test_nll_k']})" if nll is not None else "")
            + ("  *best" if improved else "") + f"  {samples.name}")


def format_terms(name: str, means: dict[str, float]) -> str:
    return (f"{name} {means['loss']:7.2f} (recon {means['recon']:.2f}, "
            f"kl {means['kl']:.2f})")


def check_finite(value: float, epoch: int, run: Path) -> None:
    if not math.isfinite(value):
        last = resolve(rundir.checkpoint_dir(run, "last"))
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was saved"
        raise TrainingDiverged(f"the loss became non-finite ({value}) in epoch {epoch + 1}; "
                               f"{where}; try a lower --lr")


def write_epoch(run: Path, model: LatentVariableModel, sample_z: torch.Tensor,
                sample_y: torch.Tensor | None, side: int, record: dict[str, Any],
                writer) -> Path:
    """Write an epoch's records: its sample grid and TensorBoard scalars, then (last, as the
    mark that the epoch is recorded) its metrics.jsonl line. Call it after the checkpoint."""
    try:
        return _write_epoch_files(run, model, sample_z, sample_y, side, record, writer)
    except OSError as e:
        last = resolve(rundir.checkpoint_dir(run, "last"))
        raise RunError(f"cannot write to the run directory {run}: {e.strerror or e} "
                       f"({e.filename or run}); "
                       + (f"the last checkpoint {last} is intact" if last else
                          "no checkpoint was saved")) from None


def _write_epoch_files(run: Path, model: LatentVariableModel, sample_z: torch.Tensor,
                       sample_y: torch.Tensor | None, side: int, record: dict[str, Any],
                       writer) -> Path:
    epoch = record["epoch"]
    for key, value in record.items():
        if key.startswith(("train_", "val_")):
            split, term = key.split("_", 1)
            writer.add_scalar(f"{term}/{split}", value, epoch)
    writer.add_scalar("speed/images_per_second", record["images_per_second"], epoch)
    writer.add_scalar("speed/epoch_seconds", record["epoch_seconds"], epoch)
    model.eval()
    with torch.no_grad():
        pixels = grid(model.images(sample_z, sample_y), ncol=side)
    model.train()
    writer.add_image("samples", pixels, epoch, dataformats="HW" if pixels.ndim == 2 else "HWC")
    writer.flush()
    samples = save_png(pixels, run / rundir.SAMPLES / f"epoch_{epoch:03d}.png", scale=2)
    append_metrics(run / rundir.METRICS, record)
    return samples


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one epoch's line to metrics.jsonl (one write: a kill leaves it whole or torn,
    and a torn line is dropped on resume)."""
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, epochs_done: int) -> int:
    """Keep the metric lines of the first `epochs_done` epochs, dropping later ones (an older
    vaelab wrote them before the checkpoint) and a line torn by a kill; return the last epoch
    that keeps its line (0 if none). The file is rewritten atomically, and only if it changes."""
    if not path.exists():
        return 0
    text = path.read_text()
    kept, recorded = [], 0
    for line in text.splitlines():
        try:
            epoch = json.loads(line)["epoch"]
        except (ValueError, KeyError, TypeError):  # torn by a kill, or blank
            continue
        if epoch <= epochs_done:
            kept.append(line)
            recorded = max(recorded, epoch)
    if kept != text.splitlines() or (text and not text.endswith("\n")):  # every line ended
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)
    return recorded


def summarize(run: Path, cfg: Config, model: LatentVariableModel, data: Datasets, device,
               progress: Progress, seconds: float, log) -> None:
    """Report the best checkpoint's test loss once, at the end (never used for selection)."""
    best_dir = resolve(rundir.checkpoint_dir(run, "best"))
    load_weights(best_dir, model)  # training is over: the model takes the best weights
    test = evaluate_loss(model, data.test.to(device), beta=1.0)
    fit_started = time.perf_counter()
    codes = samplers.training_codes(data, samplers.fit_count(model.latent_dim))
    mixture = samplers.fit_mixture(model, codes)
    mixture.save(best_dir / samplers.MIXTURE_FILE)
    fit_seconds = time.perf_counter() - fit_started
    selected_by = "val_loss" if len(data.val) else "train_neg_elbo"  # recon + beta kl
    summary = {"epochs": progress.epoch, "best_epoch": progress.best_epoch,
               f"best_{selected_by}": progress.best_val,
               **{f"test_{k}": v for k, v in test.items()},
               "protocol": f"{cfg.data.dataset} {cfg.data.mode}, {cfg.model.likelihood_name} "
                           f"likelihood, 1-sample negative ELBO in nats per image",
               "train_seconds_this_session": round(seconds, 1),
               **({"time_budget_seconds": cfg.train.time_budget}
                  if cfg.train.time_budget else {}),
               "gmm_sampler": mixture.fitted_to, "gmm_fit_seconds": round(fit_seconds, 1)}
    write_json(run / rundir.SUMMARY, summary)
    log(f"done: test negative ELBO {test['loss']:.2f} nats (recon {test['recon']:.2f}, "
        f"kl {test['kl']:.2f}) with the best checkpoint (epoch {progress.best_epoch}), "
        f"{seconds:.0f}s; gmm sampler fitted in {fit_seconds:.1f}s")
    log(f"run directory: {run}")
    log(f"next: vaelab sample {run}    vaelab reconstruct {run}    "
        f"tensorboard --logdir {run / rundir.TENSORBOARD}")
