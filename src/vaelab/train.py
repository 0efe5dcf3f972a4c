"""`train(cfg)` -> run directory.

The whole training split sits on the device as one uint8 tensor; each epoch draws one
shuffled permutation and slices batches from it, so there is no per-sample Python work and
no DataLoader. Loss sums stay on the device; the host syncs only at log points and at the
end of an epoch. Everything needed to continue bitwise-exactly (weights, optimizer, all RNG
states, the epoch's permutation and position) is in the checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from . import rundir
from .checkpoint import (
    load_trainer_state,
    load_weights,
    read_config,
    resolve,
    save_checkpoint,
    write_json,
)
from .config import Config, TrainConfig
from .data import Datasets, eval_batches, load_dataset, train_batch
from .device import pick_device
from .errors import ConfigError, Interrupted, RunError, TrainingDiverged
from .models import VAE, build_model
from .objectives import beta_at, negative_elbo
from .viz import grid, save_png

LOG_EVERY = 25  # steps between progress-bar updates (each one is a host sync)
VAL_NOISE_SEED = 1234  # validation draws the same z noise every epoch: comparable numbers
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
TERMS = ("loss", "recon", "kl")


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    if cfg.schedule == "cosine":  # Loshchilov & Hutter (2017), without restarts
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total_steps))
    return cfg.lr


def train_step(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, beta: float,
               free_bits: float) -> torch.Tensor:
    """One update; returns the detached (loss, recon, kl) as a (3,) tensor (no host sync)."""
    losses = negative_elbo(model, x, beta, free_bits)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()
    return torch.stack([losses[k].detach() for k in TERMS])


@torch.no_grad()
def eval_step(model: VAE, x: torch.Tensor, beta: float) -> torch.Tensor:
    """(loss, recon, kl) for one batch, with the target beta and no free bits."""
    losses = negative_elbo(model, x, beta)
    return torch.stack([losses[k] for k in TERMS])


def evaluate_loss(model: VAE, split, beta: float, batch_size: int = 1000) -> dict[str, float]:
    """Mean negative ELBO terms over a split, in nats per image (one z sample per image)."""
    model.eval()
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(VAL_NOISE_SEED)
        sums = torch.zeros(3, device=device)
        for x, _ in eval_batches(split, batch_size):
            sums += eval_step(model, x, beta) * len(x)
    model.train()
    return dict(zip(TERMS, (sums / len(split)).tolist()))


@dataclass
class Progress:
    """Where training stands; saved in trainer.pt, so resuming continues bitwise-exactly."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimizer steps
    batch: int = 0  # completed batches of the current epoch (nonzero only mid-epoch)
    perm: torch.Tensor | None = None  # the current epoch's order, when mid-epoch
    sums: torch.Tensor | None = None  # the current epoch's summed (loss, recon, kl)
    best_val: float = math.inf
    best_epoch: int = 0


class StopSignals:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks; a second one aborts."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: leave the signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _trainer_state(optimizer, data_rng: torch.Generator, progress: Progress,
                   device: torch.device) -> dict[str, Any]:
    state = {
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "data_rng": data_rng.get_state(),
        "epoch": progress.epoch, "step": progress.step, "batch": progress.batch,
        "best_val": progress.best_val, "best_epoch": progress.best_epoch,
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    if progress.batch:
        state["perm"] = progress.perm.cpu()
        state["sums"] = progress.sums.cpu()
    return state


def _restore(state: dict[str, Any], optimizer, data_rng: torch.Generator,
             device: torch.device) -> Progress:
    try:
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        data_rng.set_state(state["data_rng"])
        if "cuda_rng" in state and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        progress = Progress(epoch=state["epoch"], step=state["step"], batch=state["batch"],
                            best_val=state["best_val"], best_epoch=state["best_epoch"])
        if progress.batch:
            progress.perm = state["perm"].to(device)
            progress.sums = state["sums"].to(device)
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise RunError(f"trainer state does not fit this run ({type(e).__name__}: {e})"
                       ) from None
    return progress


def default_run_name(cfg: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.data.dataset}-{cfg.model.arch}-{stamp}"


def train(cfg: Config | None = None, out: str | Path | None = None,
          resume: str | Path | None = None, data_dir: str | Path | None = None,
          progress_bar: bool = True, log=None) -> Path:
    """Train a VAE and return its run directory.

    New run: `train(cfg, out=...)` (a fresh `runs/<dataset>-<arch>-<time>` if `out` is None).
    Resume: `train(resume=run_dir)` continues from `checkpoints/last`; passing `cfg` as well
    may only change `train.epochs`.
    """
    log = log or (lambda text: print(text, flush=True))  # flushed: readable through a pipe
    if resume is not None:
        run = rundir.require_run(resume)
        saved = read_config(run)
        if cfg is not None and cfg.replace({"train.epochs": saved.train.epochs}) != saved:
            raise ConfigError("only train.epochs may change when resuming a run")
        cfg = cfg or saved
    else:
        cfg = cfg or Config()
        run = Path(out) if out is not None else default_run_name(cfg)
        if (run / rundir.CHECKPOINTS).exists():
            raise RunError(f"{run} already holds a run: continue it with --resume {run}, "
                           f"or choose another --out")
    device = pick_device(cfg.train.device)
    created = not run.exists()
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create run directory {run}: {e.strerror}") from None
    try:
        with rundir.RunLock(run):
            return _train(cfg, run, device, resume is not None, data_dir, progress_bar, log)
    except Exception:
        if created and not (run / rundir.CHECKPOINTS).exists():
            shutil.rmtree(run, ignore_errors=True)  # nothing of value: leave no half-made run
        raise


def _train(cfg: Config, run: Path, device: torch.device, resuming: bool, data_dir,
           progress_bar: bool, log) -> Path:
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    data: Datasets = load_dataset(cfg.data, data_dir, device)
    torch.manual_seed(tc.seed)
    # NHWC runs the conv layers faster (oneDNN on CPU, cuDNN on GPU); the MLP is unaffected.
    model = build_model(cfg.model).to(device, memory_format=torch.channels_last)
    optimizer = OPTIMIZERS[tc.optimizer](model.parameters(), lr=tc.lr,
                                         weight_decay=tc.weight_decay)
    data_rng = torch.Generator(device=device).manual_seed(tc.seed + 1)
    sample_z = torch.randn(tc.sample_grid ** 2, cfg.model.latent_dim,  # same noise every epoch
                           generator=torch.Generator().manual_seed(tc.seed)).to(device)
    progress = Progress()
    if resuming:
        last = resolve(rundir.checkpoint_dir(run, "last"))
        if last is None:
            raise RunError(f"{run} has no checkpoint to resume from")
        load_weights(last, model)
        progress = _restore(load_trainer_state(last), optimizer, data_rng, device)
        _truncate_metrics(run / rundir.METRICS, progress.epoch)
    else:
        write_json(run / rundir.CONFIG, cfg.to_dict())

    from torch.utils.tensorboard import SummaryWriter  # slow import; only when training

    writer = SummaryWriter(run / rundir.TENSORBOARD, purge_step=progress.epoch + 1)
    n_train = len(data.train)
    steps_per_epoch = math.ceil(n_train / tc.batch_size)
    total_steps = steps_per_epoch * tc.epochs
    log(f"vaelab: training {cfg.model.arch} VAE (latent {cfg.model.latent_dim}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters) on {cfg.data.dataset} "
        f"({cfg.data.mode}, {n_train:,} train / {len(data.val):,} val images) on {device}; "
        f"run directory {run}")
    if resuming:
        log(f"vaelab: resuming after epoch {progress.epoch}"
            + (f", batch {progress.batch}" if progress.batch else ""))
    started = time.perf_counter()
    with StopSignals() as stop:
        for epoch in range(progress.epoch, tc.epochs):
            epoch_start, first_batch = time.perf_counter(), progress.batch
            if progress.batch == 0:
                progress.perm = torch.randperm(n_train, generator=data_rng, device=device)
                progress.sums = torch.zeros(3, device=device)
            bar = tqdm(total=steps_per_epoch, initial=progress.batch, unit="batch",
                       desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False,
                       disable=None if progress_bar else True)
            for b in range(progress.batch, steps_per_epoch):
                if stop.received is not None:
                    progress.batch = b
                    _interrupt(run, model, cfg, optimizer, data_rng, progress, device, stop,
                               writer, bar)
                index = progress.perm[b * tc.batch_size:(b + 1) * tc.batch_size]
                x = train_batch(data.train.images, index, data.dynamic_binarization, data_rng)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(progress.step, total_steps, tc)
                beta = beta_at(progress.step, steps_per_epoch, cfg.objective.beta,
                               cfg.objective.warmup_epochs)
                terms = train_step(model, optimizer, x, beta, cfg.objective.free_bits)
                progress.sums += terms * len(index)
                progress.step += 1
                bar.update()
                if progress.step % LOG_EVERY == 0:
                    loss = terms[0].item()
                    _check_finite(loss, epoch, run)
                    bar.set_postfix(loss=f"{loss:.2f}")
            bar.close()
            train_seconds = time.perf_counter() - epoch_start
            train_means = dict(zip(TERMS, (progress.sums / n_train).tolist()))
            _check_finite(train_means["loss"], epoch, run)
            # Model selection uses the validation loss, or the training loss without one.
            val = evaluate_loss(model, data.val, cfg.objective.beta) if len(data.val) else {}
            selection = val.get("loss", train_means["loss"])
            _check_finite(selection, epoch, run)
            progress.epoch, progress.batch = epoch + 1, 0
            improved = selection < progress.best_val
            if improved:
                progress.best_val, progress.best_epoch = selection, epoch + 1
            record = {"epoch": epoch + 1, "step": progress.step,
                      **{f"train_{k}": v for k, v in train_means.items()},
                      **{f"val_{k}": v for k, v in val.items()},
                      "lr": optimizer.param_groups[0]["lr"], "beta": beta,
                      "epoch_seconds": round(train_seconds, 3),
                      "images_per_second": round(
                          (n_train - first_batch * tc.batch_size) / train_seconds, 1)}
            samples = _write_epoch(run, model, sample_z, tc.sample_grid, record, writer)
            state = _trainer_state(optimizer, data_rng, progress, device)
            save_checkpoint(rundir.checkpoint_dir(run, "last"), model, cfg, state)
            if improved:
                save_checkpoint(rundir.checkpoint_dir(run, "best"), model, cfg, state)
            log(f"epoch {epoch + 1:3d}/{tc.epochs}  {_terms('train', train_means)}  "
                f"{_terms('val', val) if val else 'no validation set'}  "
                f"{train_seconds:5.1f}s {record['images_per_second']:,.0f} img/s"
                + ("  *best" if improved else "") + f"  {samples.name}")
            if stop.received is not None:
                _interrupt(run, model, cfg, optimizer, data_rng, progress, device, stop,
                           writer, None)
    writer.close()
    _summarize(run, cfg, data, device, progress, time.perf_counter() - started, log)
    return run


def _terms(name: str, means: dict[str, float]) -> str:
    return (f"{name} {means['loss']:7.2f} (recon {means['recon']:.2f}, "
            f"kl {means['kl']:.2f})")


def _check_finite(value: float, epoch: int, run: Path) -> None:
    if not math.isfinite(value):
        last = resolve(rundir.checkpoint_dir(run, "last"))
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was saved"
        raise TrainingDiverged(f"the loss became non-finite ({value}) in epoch {epoch + 1}; "
                               f"{where}; try a lower --lr")


def _interrupt(run, model, cfg, optimizer, data_rng, progress, device, stop, writer, bar):
    if bar is not None:
        bar.close()
    state = _trainer_state(optimizer, data_rng, progress, device)
    save_checkpoint(rundir.checkpoint_dir(run, "last"), model, cfg, state)
    writer.close()
    name = signal.Signals(stop.received).name
    where = f"epoch {progress.epoch + 1}, after batch {progress.batch}" if progress.batch \
        else f"the end of epoch {progress.epoch}"
    raise Interrupted(f"{name} received: saved {rundir.checkpoint_dir(run, 'last')} at "
                      f"{where}; continue with: vaelab train --resume {run}",
                      exit_code=128 + stop.received)


def _write_epoch(run: Path, model: VAE, sample_z: torch.Tensor, side: int,
                 record: dict[str, Any], writer) -> Path:
    """Append the epoch's metrics (JSON lines, TensorBoard) and save its sample grid."""
    with (run / rundir.METRICS).open("a") as f:
        f.write(json.dumps(record) + "\n")
    epoch = record["epoch"]
    for key, value in record.items():
        if key.startswith(("train_", "val_")):
            split, term = key.split("_", 1)
            writer.add_scalar(f"{term}/{split}", value, epoch)
    writer.add_scalar("speed/images_per_second", record["images_per_second"], epoch)
    writer.add_scalar("speed/epoch_seconds", record["epoch_seconds"], epoch)
    model.eval()
    with torch.no_grad():
        pixels = grid(model.decoder.images(sample_z), ncol=side)
    model.train()
    writer.add_image("samples", pixels, epoch, dataformats="HW")
    writer.flush()
    return save_png(pixels, run / rundir.SAMPLES / f"epoch_{epoch:03d}.png", scale=2)


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric lines of epochs after the checkpoint (written just before a crash)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines()
             if line.strip() and json.loads(line)["epoch"] <= epochs_done]
    path.write_text("".join(line + "\n" for line in lines))


def _summarize(run: Path, cfg: Config, data: Datasets, device, progress: Progress,
               seconds: float, log) -> None:
    """Report the best checkpoint's test loss once, at the end (never used for selection)."""
    best_dir = resolve(rundir.checkpoint_dir(run, "best"))
    model = build_model(cfg.model).to(device)
    load_weights(best_dir, model)
    test = evaluate_loss(model, data.test, beta=1.0)
    selected_by = "val_loss" if len(data.val) else "train_loss"
    summary = {"best_epoch": progress.best_epoch, f"best_{selected_by}": progress.best_val,
               **{f"test_{k}": v for k, v in test.items()},
               "protocol": f"{cfg.data.dataset} {cfg.data.mode}, {cfg.model.likelihood} "
                           f"likelihood, 1-sample negative ELBO in nats per image",
               "train_seconds_this_session": round(seconds, 1)}
    write_json(run / rundir.SUMMARY, summary)
    log(f"done: test negative ELBO {test['loss']:.2f} nats (recon {test['recon']:.2f}, "
        f"kl {test['kl']:.2f}) with the best checkpoint (epoch {progress.best_epoch}), "
        f"{seconds:.0f}s")
    log(f"run directory: {run}")
    log(f"next: vaelab sample {run}    vaelab reconstruct {run}    "
        f"tensorboard --logdir {run / rundir.TENSORBOARD}")
