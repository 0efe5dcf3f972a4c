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
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..config import Config, TrainConfig
from ..data.datasets import RECORDED, Datasets, described_by, load_dataset
from ..device import pick_device
from ..errors import ConfigError, Interrupted, RunError, TrainingDiverged
from ..models.generative import LatentVariableModel
from ..models.vae import build_model
from ..runs import rundir
from ..runs.checkpoint import read_config, save_checkpoint, write_json
from . import distributed
from .batches import EpochPlan, draw_batch, epoch_source
from .budget import TimeBudget
from .distributed import World
from .objectives import beta_at
from .records import (
    check_finite,
    epoch_line,
    epoch_record,
    summarize,
    test_nll,
    truncate_metrics,
    write_epoch,
)
from .resume import has_checkpoint_to_resume, restore
from .speed import build_optimizer, resolve_precision, tune_allocator
from .state import Generators, Progress, StopSignals, WeightAverage, pack
from .steps import (
    EVAL_BATCH_SIZE,
    TERMS,
    LossFn,
    UpdateGuard,
    evaluate_loss,
    lr_at,
    make_loss,
    train_step,
)

LOG_EVERY = 25  # steps between progress-bar updates (each one is a host sync)


def recorded(cfg: Config) -> dict[str, object]:
    """The values a run recorded from its data (see `described_by`), as overrides."""
    values = cfg.to_dict()
    return {key: values[key.split(".")[0]][key.split(".")[1]] for key in RECORDED}


def default_run_name(cfg: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = cfg.data.dataset if cfg.data.builtin else Path(cfg.data.dataset).stem  # a path
    return Path("runs") / f"{name}-{cfg.model.arch}-{stamp}"


def train(cfg: Config | None = None, out: str | Path | None = None,
          resume: str | Path | None = None, data_dir: str | Path | None = None,
          progress_bar: bool = True, log=None) -> Path:
    """Train a VAE and return its run directory.

    New run: `train(cfg, out=...)` (a fresh `runs/<dataset>-<arch>-<time>` if `out` is None).
    Resume: `train(resume=run_dir)` continues from `checkpoints/last` (a run killed before
    its first checkpoint starts again from its config.json); passing `cfg` as well may only
    change `train.epochs`, and a run that finished its epochs is refused unless they grow.
    Under torchrun every process calls this with the same arguments (give `out` explicitly);
    rank 0 writes the run directory.
    """
    tune_allocator()
    world = distributed.from_environment()
    log = log or (lambda text: print(text, flush=True))  # flushed: readable through a pipe
    if not world.main:
        log = lambda text: None  # noqa: E731
    if resume is not None:
        run = rundir.require_run(resume)
        saved = read_config(run)
        if cfg is not None and cfg.replace({"train.epochs": saved.train.epochs,
                                            **recorded(saved)}) != saved:
            raise ConfigError("only train.epochs may change when resuming a run")
        cfg = cfg or saved
        resuming = has_checkpoint_to_resume(run, cfg, log)
    else:
        resuming = False
        cfg = cfg or Config()
        if out is None and world.distributed:
            raise ConfigError("under torchrun, name the run directory with --out")
        run = Path(out) if out is not None else default_run_name(cfg)
        if (run / rundir.CHECKPOINTS).exists():
            raise RunError(f"{run} already holds a run: continue it with --resume {run}, "
                           f"or choose another --out")
    device = distributed.setup(world, pick_device(cfg.train.device))
    made = [d for d in (run, *run.parents) if not d.exists()]  # what mkdir makes, deepest first
    try:
        world.barrier()  # every rank has checked the run directory before rank 0 writes
        if world.main:
            try:
                run.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RunError(f"cannot create run directory {run}: {e.strerror}") from None
        with rundir.RunLock(run) if world.main else contextlib.nullcontext():
            _train(cfg, run, device, world, resuming, data_dir, progress_bar and world.main,
                   log)
        # Rank 0 summarises alone after the last epoch; the others wait, so that no process
        # leaves the group (gloo aborts one that does while another still works) before it.
        world.barrier()
        return run
    except Exception:
        if world.main and made and not (run / rundir.CHECKPOINTS).exists():
            shutil.rmtree(run, ignore_errors=True)  # nothing of value: leave no half-made run
            for parent in made[1:]:  # nor the folders made for it (runs/), once empty
                with contextlib.suppress(OSError):
                    parent.rmdir()
        raise
    finally:
        distributed.teardown(world)


@dataclass
class Session:
    """What one training process sets up once and every epoch uses."""

    cfg: Config
    run: Path
    device: torch.device
    world: World
    data: Datasets  # training images on the host; val and test on the device
    model: LatentVariableModel
    optimizer: torch.optim.Optimizer
    ema: WeightAverage  # what is evaluated, sampled and saved as the model
    generators: Generators
    progress: Progress
    loss_fn: LossFn
    guard: UpdateGuard
    noise_shape: tuple[int, ...]  # (latent_dim,) for the ELBO, (K, latent_dim) for IWAE
    sample_inputs: tuple[torch.Tensor, torch.Tensor | None]  # the same codes every epoch
    writer: Any  # TensorBoard's SummaryWriter on rank 0, else None
    log: Callable[[str], None]
    budget: TimeBudget | None  # --time, until the epochs are fitted to it

    def fit_epochs(self, epochs: int) -> None:
        """Train for `epochs` in all (fitted to --time); every process takes the same."""
        total = self.world.all_reduce(torch.tensor([float(epochs)], device=self.device)).item()
        epochs = round(total / self.world.size)  # the fit never ends inside an epoch
        if epochs != self.cfg.train.epochs:
            self.cfg = self.cfg.replace({"train.epochs": epochs})
            if self.world.main:
                write_json(self.run / rundir.CONFIG, self.cfg.to_dict())
        self.log(f"vaelab: --time {self.cfg.train.time_budget:g}s: training {epochs} epochs")

    def checkpoint(self, *which: str, record: dict[str, Any] | None = None) -> None:
        """Save `which` checkpoints in that order, each atomically; `record` (the epoch's
        metrics) goes into trainer.pt, so a resume can write the epoch's records again."""
        state = {**pack(self.optimizer, self.generators, self.progress), **self.ema.state(),
                 **({"record": record} if record is not None else {})}
        for name in which:
            save_checkpoint(rundir.checkpoint_dir(self.run, name), self.ema.model, self.cfg,
                            state, self.ema.online_weights())

    def record_epoch(self, record: dict[str, Any]) -> None:
        """Write the epoch's records (its checkpoint is durable by now) and print its line."""
        tc = self.cfg.train
        samples = write_epoch(self.run, self.ema.model, *self.sample_inputs, tc.sample_grid,
                              record, self.writer)
        self.log(epoch_line(record, tc.epochs, record["epoch"] == self.progress.best_epoch,
                            samples))


def _train(cfg: Config, run: Path, device: torch.device, world: World, resuming: bool,
           data_dir, progress_bar: bool, log) -> Path:
    s = _start(cfg, run, device, world, resuming, data_dir, log)
    objective, progress = cfg.objective, s.progress
    n_train = len(s.data.train)
    started = time.perf_counter()
    with StopSignals() as stop:
        while progress.epoch < s.cfg.train.epochs:  # --time may fit the epochs on the way
            epoch, epoch_start, first_batch = progress.epoch, time.perf_counter(), progress.batch
            sums = _train_epoch(s, epoch, stop, progress_bar)  # (loss, recon, kl, skipped)
            tc = s.cfg.train
            train_seconds = time.perf_counter() - epoch_start
            skipped = round(sums[3].item())
            if skipped == n_train:
                raise TrainingDiverged(f"every update of epoch {epoch + 1} was skipped (non-finite"
                                       f" or above train.skip_threshold); try a lower --lr")
            train_means = dict(zip(TERMS, (sums[:3] / (n_train - skipped)).tolist()))
            check_finite(train_means["loss"], epoch, run)
            # Model selection uses the validation loss, or without one the training loss at the
            # full beta: what was optimised is lower during KL warm-up, and would pick an early
            # epoch. Every rank evaluates (same weights, same noise): all reach the same decision.
            val_means = evaluate_loss(s.ema.model, s.data.val, objective.beta) \
                if len(s.data.val) else {}
            selection = val_means.get("loss", train_means["recon"]
                                      + objective.beta * train_means["kl"])
            check_finite(selection, epoch, run)
            nll = test_nll(s.ema.model, s.data.test, tc, device) \
                if world.main and _nll_due(tc, epoch) else None
            progress.epoch, progress.batch = epoch + 1, 0
            improved = selection < progress.best_val
            if improved:
                progress.best_val, progress.best_epoch = selection, epoch + 1
            beta = beta_at(progress.step - 1, _steps_per_epoch(s), objective.beta,
                           objective.warmup_epochs)  # that of the epoch's last step
            record = epoch_record(progress, train_means, val_means, nll, tc,
                                  s.optimizer.param_groups[0]["lr"], beta,
                                  skipped if s.guard.skips else None,
                                  train_seconds, n_train - first_batch * tc.batch_size)
            if world.main:  # `last` after `best`: a resume from `last` never outruns `best`
                s.checkpoint(*(("best",) if improved else ()), "last", record=record)
                s.record_epoch(record)  # only now: no record shows an epoch not saved
            if s.budget is not None:  # refine the fit with a whole epoch's time, once
                if first_batch == 0:
                    s.fit_epochs(s.budget.after_first_epoch(time.perf_counter() - epoch_start,
                                                            progress.step))
                s.budget = None
            if _stop_requested(stop, world, device):
                _interrupt(s, stop, None)
    if world.main:
        s.writer.close()
        summarize(run, s.cfg, s.ema.model, s.data, device, progress,
                  time.perf_counter() - started, log)
    return run


def _start(cfg: Config, run: Path, device: torch.device, world: World, resuming: bool,
           data_dir, log) -> Session:
    """Load the data, build the model and optimizer, and restore `checkpoints/last` when
    resuming (or write config.json for a new run)."""
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    data: Datasets = load_dataset(cfg.data, data_dir, "cpu", log=log)  # training images
    data = replace(data, val=data.val.to(device))  # stay on the host
    cfg = cfg.replace(described_by(cfg, data))  # the run records what the data is
    precision = resolve_precision(tc.precision, device)
    torch.manual_seed(tc.seed)
    # NHWC runs the conv layers faster (oneDNN on CPU, cuDNN on GPU); the MLP is unaffected.
    model = build_model(cfg.model).to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(tc.optimizer, model.parameters(), tc.lr, tc.weight_decay,
                                tc.adam_beta2, device)
    ema = WeightAverage(model, tc.ema)
    generators = Generators.seeded(tc.seed, device)
    progress, unrecorded = restore(run, world, ema, optimizer, generators, device) \
        if resuming else (Progress(), None)
    if world.main and not resuming:
        truncate_metrics(run / rundir.METRICS, 0)  # a run started again keeps no old lines
    if world.main and (not resuming or cfg != read_config(run)):  # new, or --epochs changed
        write_json(run / rundir.CONFIG, cfg.to_dict())
    loss_fn = make_loss(distributed.wrap(model, world, device), cfg.objective, device,
                        precision, tc.compile)
    noise_shape = ((cfg.objective.k,) if cfg.objective.kind != "elbo" else ()) \
        + (model.latent_dim,)
    writer = None
    if world.main:
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when training

        # Hides the events of later epochs, and of an epoch whose records are written again.
        purge_step = progress.epoch if unrecorded is not None else progress.epoch + 1
        writer = SummaryWriter(run / rundir.TENSORBOARD, purge_step=purge_step)
    log(f"vaelab: training {cfg.model.arch} VAE (latent {model.latent_dim}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters) on {cfg.data.dataset} "
        f"({cfg.data.mode} {'x'.join(map(str, data.shape))}, {cfg.model.likelihood} "
        f"likelihood, {len(data.train):,} train / {len(data.val):,} val images) on "
        f"{device}" + (f" x {world.size} processes" if world.distributed else "")
        + f", {precision}{', compiled' if tc.compile else ''}; run directory {run}")
    if resuming:
        log(f"vaelab: resuming after epoch {progress.epoch}"
            + (f", batch {progress.batch}" if progress.batch else ""))
    steps_per_epoch = math.ceil(len(data.train) / tc.batch_size)
    budget = TimeBudget(tc.time_budget, steps_per_epoch,
                        math.ceil(len(data.val) / EVAL_BATCH_SIZE),
                        min_epochs=max(1, math.ceil(tc.lr_warmup_epochs))) \
        if tc.time_budget and progress.epoch == 0 else None  # a fitted run resumes as it is
    s = Session(cfg, run, device, world, data, model, optimizer, ema, generators, progress,
                loss_fn, UpdateGuard.of(tc), noise_shape, _sample_inputs(model, tc, device),
                writer, log, budget)
    if unrecorded is not None:  # killed after its checkpoint, before its records
        s.record_epoch(unrecorded)
    return s


def _steps_per_epoch(s: Session) -> int:
    return math.ceil(len(s.data.train) / s.cfg.train.batch_size)


def _train_epoch(s: Session, epoch: int, stop: StopSignals, progress_bar: bool) -> torch.Tensor:
    """One pass over the training set (from the saved batch when resuming mid-epoch); returns
    the (loss, recon, kl) sums and the count of skipped images, summed over processes."""
    tc, progress, world, device = s.cfg.train, s.progress, s.world, s.device
    n_train, steps_per_epoch = len(s.data.train), _steps_per_epoch(s)
    session_steps = 0
    if progress.batch == 0:
        progress.perm = torch.randperm(n_train, generator=s.generators.order)
        progress.sums = torch.zeros(4, device=device)
    plan = EpochPlan.make(n_train, tc.batch_size, world)
    source, labels, order = epoch_source(s.data.train, plan, progress.perm, tc.batch_size,
                                         device)
    bar = tqdm(total=steps_per_epoch, initial=progress.batch, unit="batch",
               desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False,
               disable=None if progress_bar else True)
    poll_every = LOG_EVERY if world.distributed else 1  # agreeing on a stop is a collective
    for b in range(progress.batch, steps_per_epoch):
        if b % poll_every == 0 and _stop_requested(stop, world, device):
            progress.batch = b
            _interrupt(s, stop, bar)
        x, y, noise = draw_batch(source, labels, order, plan, b, s.noise_shape,
                                 s.data.dynamic_binarization, s.generators.noise)
        for group in s.optimizer.param_groups:
            group["lr"] = lr_at(progress.step, steps_per_epoch, tc)
        beta = beta_at(progress.step, steps_per_epoch, s.cfg.objective.beta,
                       s.cfg.objective.warmup_epochs)
        share = len(x) * world.size / plan.sizes[b]
        terms = train_step(s.loss_fn, s.optimizer, x, noise, y if s.model.conditional else None,
                           torch.tensor(beta, device=device), share, s.guard)
        progress.step += 1
        session_steps += 1
        bar.update()
        if s.budget is not None and (epochs := s.budget.after_step(session_steps,
                                                                   progress.step)):
            s.fit_epochs(epochs)
            tc = s.cfg.train
            bar.set_description(f"epoch {epoch + 1}/{tc.epochs}")
        if terms is None:  # a skipped update (--skip-nonfinite, skip_threshold)
            progress.sums[3] += len(x)
            continue
        s.ema.update()
        progress.sums[:3] += terms * len(x)
        if progress.step % LOG_EVERY == 0:
            loss = world.all_reduce(terms[:1].clone()).item() / world.size
            check_finite(loss, epoch, s.run)
            bar.set_postfix(loss=f"{loss:.2f}")
    bar.close()
    return world.all_reduce(progress.sums.clone())


def _nll_due(tc: TrainConfig, epoch: int) -> bool:
    return tc.nll_every > 0 and ((epoch + 1) % tc.nll_every == 0 or epoch + 1 == tc.epochs)


def _stop_requested(stop: StopSignals, world: World, device: torch.device) -> bool:
    """Whether a stop signal arrived (in any process: they must stop at the same batch). The
    flag lives on this process's device: NCCL reduces only CUDA tensors."""
    if not world.distributed:
        return stop.received is not None
    flag = torch.tensor([float(stop.received is not None)], device=device)
    return world.all_reduce(flag).item() > 0


def _interrupt(s: Session, stop: StopSignals, bar) -> None:
    if bar is not None:
        bar.close()
    progress = s.progress
    if progress.batch:
        progress.sums = s.world.all_reduce(progress.sums)  # the checkpoint holds global sums
    if s.world.main:
        s.checkpoint("last")
        s.writer.close()
    signum = stop.received or signal.SIGTERM  # another process may have received it
    where = f"epoch {progress.epoch + 1}, after batch {progress.batch}" if progress.batch \
        else f"the end of epoch {progress.epoch}"
    raise Interrupted(f"{signal.Signals(signum).name} received: saved "
                      f"{rundir.checkpoint_dir(s.run, 'last')} at {where}; continue with: "
                      f"vaelab train --resume {s.run}", exit_code=128 + signum)


def _sample_inputs(model: LatentVariableModel, tc: TrainConfig,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Codes for the per-epoch sample grid, and for a conditional model one class per row."""
    count = tc.sample_grid ** 2
    z = torch.randn(count, model.latent_dim, generator=torch.Generator().manual_seed(tc.seed))
    y = (torch.arange(count) // tc.sample_grid) % model.num_classes if model.conditional \
        else None
    return z.to(device), (y.to(device) if y is not None else None)
