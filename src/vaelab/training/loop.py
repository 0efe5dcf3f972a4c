"""`train(cfg)` -> run directory.

The training images sit in host memory as one uint8 tensor. Each epoch draws one shuffled
permutation, gathers this process's rows of it onto the device in one copy (its shard: all
of it in a single process, 1/W of it under torchrun with W processes), and slices batches
from that, so there is no per-sample Python work and no DataLoader. Loss sums stay on the
device; the host syncs only at log points and at the end of an epoch. Everything needed to
continue bitwise-exactly (weights, optimizer, all RNG states, the epoch's permutation and
position) is in the checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import Config, TrainConfig
from ..data.datasets import Datasets, load_dataset
from ..device import pick_device
from ..errors import ConfigError, Interrupted, RunError, TrainingDiverged
from ..models.generative import LatentVariableModel
from ..models.vae import build_model
from ..runs import rundir
from ..runs.checkpoint import (
    load_trainer_state,
    read_config,
    resolve,
    save_checkpoint,
    write_json,
)
from . import distributed
from .batches import EpochPlan, draw_batch, epoch_source
from .distributed import World
from .objectives import beta_at
from .records import (
    check_finite,
    format_terms,
    summarize,
    test_nll,
    truncate_metrics,
    write_epoch,
)
from .speed import build_optimizer, resolve_precision, tune_allocator
from .state import Generators, Progress, StopSignals, WeightAverage, pack, unpack
from .steps import TERMS, UpdateGuard, evaluate_loss, lr_at, make_loss, train_step

LOG_EVERY = 25  # steps between progress-bar updates (each one is a host sync)


def default_run_name(cfg: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.data.dataset}-{cfg.model.arch}-{stamp}"


def train(cfg: Config | None = None, out: str | Path | None = None,
          resume: str | Path | None = None, data_dir: str | Path | None = None,
          progress_bar: bool = True, log=None) -> Path:
    """Train a VAE and return its run directory.

    New run: `train(cfg, out=...)` (a fresh `runs/<dataset>-<arch>-<time>` if `out` is None).
    Resume: `train(resume=run_dir)` continues from `checkpoints/last`; passing `cfg` as well
    may only change `train.epochs`. Under torchrun every process calls this with the same
    arguments (give `out` explicitly); rank 0 writes the run directory.
    """
    tune_allocator()
    world = distributed.from_environment()
    log = log or (lambda text: print(text, flush=True))  # flushed: readable through a pipe
    if not world.main:
        log = lambda text: None  # noqa: E731
    if resume is not None:
        run = rundir.require_run(resume)
        saved = read_config(run)
        if cfg is not None and cfg.replace({"train.epochs": saved.train.epochs}) != saved:
            raise ConfigError("only train.epochs may change when resuming a run")
        cfg = cfg or saved
    else:
        cfg = cfg or Config()
        if out is None and world.distributed:
            raise ConfigError("under torchrun, name the run directory with --out")
        run = Path(out) if out is not None else default_run_name(cfg)
        if (run / rundir.CHECKPOINTS).exists():
            raise RunError(f"{run} already holds a run: continue it with --resume {run}, "
                           f"or choose another --out")
    device = distributed.setup(world, pick_device(cfg.train.device))
    created = not run.exists()
    try:
        world.barrier()  # every rank has checked the run directory before rank 0 writes
        if world.main:
            try:
                run.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RunError(f"cannot create run directory {run}: {e.strerror}") from None
        with rundir.RunLock(run) if world.main else contextlib.nullcontext():
            return _train(cfg, run, device, world, resume is not None, data_dir,
                          progress_bar and world.main, log)
    except Exception:
        if world.main and created and not (run / rundir.CHECKPOINTS).exists():
            shutil.rmtree(run, ignore_errors=True)  # nothing of value: leave no half-made run
        raise
    finally:
        distributed.teardown(world)


def _train(cfg: Config, run: Path, device: torch.device, world: World, resuming: bool,
           data_dir, progress_bar: bool, log) -> Path:
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    data: Datasets = load_dataset(cfg.data, data_dir, "cpu")  # training images stay on the host
    val = data.val.to(device)
    precision = resolve_precision(tc.precision, device)
    torch.manual_seed(tc.seed)
    # NHWC runs the conv layers faster (oneDNN on CPU, cuDNN on GPU); the MLP is unaffected.
    model = build_model(cfg.model).to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(tc.optimizer, model.parameters(), tc.lr, tc.weight_decay,
                                tc.adam_beta2, device)
    ema = WeightAverage(model, tc.ema)  # what is evaluated, sampled and saved as the model
    generators = Generators.seeded(tc.seed, device)
    sample_z, sample_y = _sample_inputs(model, tc, device)  # the same every epoch
    progress = Progress()
    if resuming:
        last = resolve(rundir.checkpoint_dir(run, "last"))
        if last is None:
            raise RunError(f"{run} has no checkpoint to resume from")
        ema.load(last)
        state = load_trainer_state(last)
        progress = unpack(state, optimizer, generators, device)
        ema.restore(state)
        if progress.batch and not world.main:
            progress.sums.zero_()  # the saved sums are global; rank 0 carries them on
        if world.main:
            truncate_metrics(run / rundir.METRICS, progress.epoch)
    elif world.main:
        write_json(run / rundir.CONFIG, cfg.to_dict())
    loss_fn = make_loss(distributed.wrap(model, world, device), cfg.objective, device,
                        precision, tc.compile)
    guard = UpdateGuard.of(tc)
    noise_shape = ((cfg.objective.k,) if cfg.objective.kind != "elbo" else ()) \
        + (model.latent_dim,)

    writer = None
    if world.main:
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when training

        writer = SummaryWriter(run / rundir.TENSORBOARD, purge_step=progress.epoch + 1)
    n_train = len(data.train)
    steps_per_epoch = math.ceil(n_train / tc.batch_size)
    log(f"vaelab: training {cfg.model.arch} VAE (latent {model.latent_dim}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters) on {cfg.data.dataset} "
        f"({cfg.data.mode}, {n_train:,} train / {len(val):,} val images) on {device}"
        + (f" x {world.size} processes" if world.distributed else "")
        + f", {precision}{', compiled' if tc.compile else ''}; run directory {run}")
    if resuming:
        log(f"vaelab: resuming after epoch {progress.epoch}"
            + (f", batch {progress.batch}" if progress.batch else ""))
    started = time.perf_counter()
    poll_every = LOG_EVERY if world.distributed else 1  # agreeing on a stop is a collective
    with StopSignals() as stop:
        for epoch in range(progress.epoch, tc.epochs):
            epoch_start, first_batch = time.perf_counter(), progress.batch
            if progress.batch == 0:
                progress.perm = torch.randperm(n_train, generator=generators.order)
                progress.sums = torch.zeros(4, device=device)
            plan = EpochPlan.make(n_train, tc.batch_size, world)
            source, labels, order = epoch_source(data.train, plan, progress.perm,
                                                 tc.batch_size, device)
            bar = tqdm(total=steps_per_epoch, initial=progress.batch, unit="batch",
                       desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False,
                       disable=None if progress_bar else True)
            for b in range(progress.batch, steps_per_epoch):
                if b % poll_every == 0 and _stop_requested(stop, world):
                    progress.batch = b
                    _interrupt(run, ema, cfg, optimizer, generators, progress, world, stop,
                               writer, bar)
                x, y, noise = draw_batch(source, labels, order, plan, b, noise_shape,
                                         data.dynamic_binarization, generators.noise)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(progress.step, steps_per_epoch, tc)
                beta = beta_at(progress.step, steps_per_epoch, cfg.objective.beta,
                               cfg.objective.warmup_epochs)
                share = len(x) * world.size / plan.sizes[b]
                terms = train_step(loss_fn, optimizer, x, noise, y if model.conditional else None,
                                   torch.tensor(beta, device=device), share, guard)
                progress.step += 1
                bar.update()
                if terms is None:  # a skipped update (--skip-nonfinite, skip_threshold)
                    progress.sums[3] += len(x)
                    continue
                ema.update()
                progress.sums[:3] += terms * len(x)
                if progress.step % LOG_EVERY == 0:
                    loss = world.all_reduce(terms[:1].clone()).item() / world.size
                    check_finite(loss, epoch, run)
                    bar.set_postfix(loss=f"{loss:.2f}")
            bar.close()
            del source, labels, order
            train_seconds = time.perf_counter() - epoch_start
            sums = world.all_reduce(progress.sums.clone())  # (loss, recon, kl, images skipped)
            skipped = round(sums[3].item())
            if skipped == n_train:
                raise TrainingDiverged(f"every update of epoch {epoch + 1} was skipped (non-finite"
                                       f" or above train.skip_threshold); try a lower --lr")
            train_means = dict(zip(TERMS, (sums[:3] / (n_train - skipped)).tolist()))
            check_finite(train_means["loss"], epoch, run)
            # Model selection uses the validation loss, or without one the training loss at the
            # full beta: what was optimised is lower during KL warm-up, and would pick an early
            # epoch. Every rank evaluates (same weights, same noise): all reach the same decision.
            val_means = evaluate_loss(ema.model, val, cfg.objective.beta) if len(val) else {}
            selection = val_means.get(
                "loss", train_means["recon"] + cfg.objective.beta * train_means["kl"])
            check_finite(selection, epoch, run)
            nll = test_nll(ema.model, data.test, tc, device) \
                if world.main and _nll_due(tc, epoch) else None
            progress.epoch, progress.batch = epoch + 1, 0
            improved = selection < progress.best_val
            if improved:
                progress.best_val, progress.best_epoch = selection, epoch + 1
            record = {"epoch": epoch + 1, "step": progress.step,
                      **{f"train_{k}": v for k, v in train_means.items()},
                      **{f"val_{k}": v for k, v in val_means.items()},
                      **({"test_nll": nll, "test_nll_k": tc.nll_k} if nll is not None else {}),
                      "lr": optimizer.param_groups[0]["lr"], "beta": beta,
                      **({"skipped_images": skipped} if guard.skips else {}),
                      "epoch_seconds": round(train_seconds, 3),
                      "images_per_second": round(
                          (n_train - first_batch * tc.batch_size) / train_seconds, 1)}
            if world.main:
                samples = write_epoch(run, ema.model, sample_z, sample_y, tc.sample_grid, record,
                                       writer)
                state = {**pack(optimizer, generators, progress), **ema.state()}
                save_checkpoint(rundir.checkpoint_dir(run, "last"), ema.model, cfg, state,
                                ema.online_weights())
                if improved:
                    save_checkpoint(rundir.checkpoint_dir(run, "best"), ema.model, cfg, state,
                                    ema.online_weights())
                log(f"epoch {epoch + 1:3d}/{tc.epochs}  {format_terms('train', train_means)}  "
                    f"{format_terms('val', val_means) if val_means else 'no validation set'}  "
                    f"{train_seconds:5.1f}s {record['images_per_second']:,.0f} img/s"
                    + (f"  skipped {skipped} images" if skipped else "")
                    + (f"  test NLL {nll:.2f} (K={tc.nll_k})" if nll is not None else "")
                    + ("  *best" if improved else "") + f"  {samples.name}")
            if _stop_requested(stop, world):
                _interrupt(run, ema, cfg, optimizer, generators, progress, world, stop,
                           writer, None)
    if world.main:
        writer.close()
        summarize(run, cfg, ema.model, data, device, progress, time.perf_counter() - started,
                   log)
    return run


def _nll_due(tc: TrainConfig, epoch: int) -> bool:
    return tc.nll_every > 0 and ((epoch + 1) % tc.nll_every == 0 or epoch + 1 == tc.epochs)


def _stop_requested(stop: StopSignals, world: World) -> bool:
    """Whether a stop signal arrived (in any process: they must stop at the same batch)."""
    if not world.distributed:
        return stop.received is not None
    flag = torch.tensor([float(stop.received is not None)])
    return world.all_reduce(flag).item() > 0


def _interrupt(run, ema, cfg, optimizer, generators, progress, world, stop, writer, bar):
    if bar is not None:
        bar.close()
    if progress.batch:
        progress.sums = world.all_reduce(progress.sums)  # the checkpoint holds global sums
    if world.main:
        save_checkpoint(rundir.checkpoint_dir(run, "last"), ema.model, cfg,
                        {**pack(optimizer, generators, progress), **ema.state()},
                        ema.online_weights())
        writer.close()
    signum = stop.received or signal.SIGTERM  # another process may have received it
    where = f"epoch {progress.epoch + 1}, after batch {progress.batch}" if progress.batch \
        else f"the end of epoch {progress.epoch}"
    raise Interrupted(f"{signal.Signals(signum).name} received: saved "
                      f"{rundir.checkpoint_dir(run, 'last')} at {where}; continue with: "
                      f"vaelab train --resume {run}", exit_code=128 + signum)


def _sample_inputs(model: LatentVariableModel, tc: TrainConfig,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Codes for the per-epoch sample grid, and for a conditional model one class per row."""
    count = tc.sample_grid ** 2
    z = torch.randn(count, model.latent_dim, generator=torch.Generator().manual_seed(tc.seed))
    y = (torch.arange(count) // tc.sample_grid) % model.num_classes if model.conditional \
        else None
    return z.to(device), (y.to(device) if y is not None else None)
