"""`vaelab train` and `vaelab download`."""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path
from typing import Any

from ..config import (
    BUILTIN_DATASETS,
    Config,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    TrainConfig,
    load_toml,
    parse_override,
)
from ..errors import ConfigError

DEFAULTS = Config()


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 32,64, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def duration(text: str) -> float:
    """"90", "90s", "5m", "1h30m", "1.5h" -> seconds (> 0)."""
    parts = re.fullmatch(r"\s*((?:\d+(?:\.\d*)?[hms]?\s*)+)", text.lower())
    if parts:
        pieces = re.findall(r"(\d+(?:\.\d*)?)([hms]?)", parts.group(1))
        seconds = sum(float(number) * DURATION_UNITS[unit or "s"] for number, unit in pieces)
        if seconds > 0:
            return seconds
    raise argparse.ArgumentTypeError(f"expected a duration like 90s, 5m or 1h30m, got {text!r}")


# (flag, dotted config key, section class, help). Types and choices come from the config.
TRAIN_FLAGS: list[tuple[str, str, type, str]] = [
    ("--dataset", "data.dataset", DataConfig,
     f"a built-in dataset ({', '.join(BUILTIN_DATASETS)}) or your own images: a folder of "
     "image files (one sub-folder per class, optionally inside train/ and test/) or a "
     ".npz / .npy array"),
    ("--data", "data.mode", DataConfig,
     "binarized: fresh Bernoulli draw per pixel each epoch (the NLL protocol, grayscale "
     "only); grayscale / colour: the 8-bit values in [0, 1]; auto: binarized for the MNIST "
     "family, the values as they are otherwise"),
    ("--image-size", "data.image_size", DataConfig,
     "resize every image to SxS (shorter side, then the centre crop; 0: as stored)"),
    ("--image-channels", "data.channels", DataConfig,
     "convert the images to 1 (gray) or 3 (colour) channels (0: as stored)"),
    ("--val-size", "data.val_size", DataConfig,
     "training images held out for validation / best-checkpoint selection"),
    ("--limit", "data.limit", DataConfig, "train on only the first N training images (0: all)"),
    ("--model", "model.arch", ModelConfig, "network family"),
    ("--latent-dim", "model.latent_dim", ModelConfig,
     "latent dimensions (1-256; per stochastic layer for hvae)"),
    ("--hidden", "model.hidden", ModelConfig, "MLP hidden widths, e.g. 512,256"),
    ("--channels", "model.channels", ModelConfig, "conv channels per stride-2 layer"),
    ("--dense", "model.dense", ModelConfig, "conv dense layer before the latent (0: none)"),
    ("--likelihood", "model.likelihood", ModelConfig,
     "p(x|z): bernoulli (BCE), gaussian (MSE, fixed std), gaussian-learned, "
     "logistic-mixture (discretized, for 8-bit images, as PixelCNN++ and NVAE); auto: "
     "bernoulli for grayscale, logistic-mixture for colour"),
    ("--logistic-components", "model.logistic_components", ModelConfig,
     "mixture components of the logistic-mixture likelihood"),
    ("--gaussian-std", "model.gaussian_std", ModelConfig, "std of the Gaussian likelihood"),
    ("--pad32", "model.pad32", ModelConfig,
     "zero-pad image sides to a multiple of 32 inside conv models (28x28 -> 32x32)"),
    ("--conditional", "model.conditional", ModelConfig,
     "condition encoder and decoder on the class label (cvae always is)"),
    ("--prior", "model.prior", ModelConfig,
     "p(z): normal N(0, I), mog (learned mixture of Gaussians), vamp (VampPrior), "
     "class (a learned Gaussian per class, conditional models); auto: class for "
     "conditional one-layer models, else normal"),
    ("--prior-components", "model.prior_components", ModelConfig,
     "mixture components / VampPrior pseudo-inputs"),
    ("--layers", "model.layers", ModelConfig, "hvae: stochastic layers"),
    ("--width", "model.width", ModelConfig, "hvae: width of the residual cells"),
    ("--blocks", "model.blocks", ModelConfig, "hvae: residual cells per layer and path"),
    ("--objective", "objective.kind", ObjectiveConfig,
     "elbo; iwae: K-sample importance-weighted bound; iwae-dreg: the same with DReG "
     "gradients"),
    ("--k", "objective.k", ObjectiveConfig, "importance samples per image for iwae"),
    ("--beta", "objective.beta", ObjectiveConfig, "weight of the KL term"),
    ("--warmup-epochs", "objective.warmup_epochs", ObjectiveConfig,
     "epochs over which beta rises linearly from 0"),
    ("--free-bits", "objective.free_bits", ObjectiveConfig,
     "nats per latent dimension not penalised"),
    ("--epochs", "train.epochs", TrainConfig, "passes over the training images"),
    ("--batch-size", "train.batch_size", TrainConfig, "images per step"),
    ("--lr", "train.lr", TrainConfig, "learning rate"),
    ("--optimizer", "train.optimizer", TrainConfig, "optimizer"),
    ("--adam-beta2", "train.adam_beta2", TrainConfig, "Adam's second-moment decay"),
    ("--weight-decay", "train.weight_decay", TrainConfig, "weight decay"),
    ("--schedule", "train.schedule", TrainConfig, "learning-rate schedule"),
    ("--lr-warmup-epochs", "train.lr_warmup_epochs", TrainConfig,
     "epochs over which the learning rate rises linearly from 0"),
    ("--seed", "train.seed", TrainConfig, "random seed (weights, data order, noise)"),
    ("--device", "train.device", TrainConfig, "auto picks cuda, then mps, then cpu"),
    ("--threads", "train.threads", TrainConfig, "CPU threads (0: torch's default)"),
    ("--precision", "train.precision", TrainConfig,
     "bf16 autocast or fp32; auto: bf16 where the device runs it natively"),
    ("--compile", "train.compile", TrainConfig,
     "torch.compile the forward and backward pass (costs seconds up front)"),
    ("--skip-nonfinite", "train.skip_nonfinite", TrainConfig,
     "skip an update whose loss or gradients are not finite, instead of stopping"),
    ("--skip-threshold", "train.skip_threshold", TrainConfig,
     "skip an update whose gradient norm exceeds this (0: never)"),
    ("--grad-clip", "train.grad_clip", TrainConfig, "clip the gradient norm (0: off)"),
    ("--ema", "train.ema", TrainConfig,
     "decay of the weight average that is evaluated and saved (0: off; e.g. 0.999)"),
    ("--nll-every", "train.nll_every", TrainConfig,
     "log an importance-sampled test NLL every N epochs, for NLL-vs-time curves (0: off)"),
    ("--nll-k", "train.nll_k", TrainConfig, "importance samples per image of that estimate"),
    ("--nll-images", "train.nll_images", TrainConfig, "test images of that estimate"),
    ("--sample-grid", "train.sample_grid", TrainConfig, "side of the per-epoch sample grid"),
]


def _default(key: str) -> Any:
    section, name = key.split(".")
    value = getattr(getattr(DEFAULTS, section), name)
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    for flag, key, section, text in TRAIN_FLAGS:
        name = key.split(".")[1]
        kind = typing.get_type_hints(section)[name]
        kwargs: dict[str, Any] = {"dest": key, "default": None,
                                  "help": f"{text} (default: {_default(key)})"}
        if typing.get_origin(kind) is typing.Literal:
            kwargs["choices"] = typing.get_args(kind)
        elif kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            kwargs["type"], kwargs["metavar"] = _int_list, "N,N"
        else:
            kwargs["type"], kwargs["metavar"] = kind, name.upper()
        parser.add_argument(flag, **kwargs)


def register(sub) -> None:
    p = sub.add_parser("train", help="train a VAE; writes a run directory",
                       description="Train a VAE. Settings come from the defaults, then "
                       "--config FILE, then flags, then --set overrides.")
    p.add_argument("--config", type=Path, help="TOML config file (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config value, e.g. --set model.hidden=[512,256]")
    p.add_argument("--out", type=Path, help="run directory to create "
                   "(default: runs/<dataset>-<model>-<date>-<time>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run (only --epochs may change)")
    p.add_argument("--data-dir", type=Path, help="folder holding <dataset>/ IDX files "
                   "(default: $VAELAB_DATA_DIR, else the user cache directory)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--time", type=duration, metavar="DURATION", dest="train.time_budget",
                   help="train for about this long, e.g. 90s, 5m, 1h30m: the epochs are fitted "
                   "to the speed of the first steps (loading and the final evaluation come on "
                   "top; default: off, --epochs decides)")
    _add_train_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("download", help="fetch a built-in dataset's files for offline use")
    p.add_argument("--dataset", choices=BUILTIN_DATASETS, default="mnist",
                   help="dataset (default: mnist)")
    p.add_argument("--data-dir", type=Path, help="target folder "
                   "(default: $VAELAB_DATA_DIR, else the user cache directory)")
    p.set_defaults(func=cmd_download)


def cmd_train(args: argparse.Namespace) -> None:
    from ..training.loop import train

    keys = [key for _, key, _, _ in TRAIN_FLAGS] + ["train.time_budget"]
    overrides = {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
    if args.resume is not None:
        if args.out is not None or args.config or args.set or set(overrides) - {"train.epochs"}:
            raise ConfigError("--resume takes its settings from the run's config.json; "
                              "only --epochs (and --data-dir, --no-progress) may be given")
        from ..runs.checkpoint import read_config
        from ..runs.rundir import require_run

        cfg = read_config(require_run(args.resume)).replace(overrides)
        train(cfg, resume=args.resume, data_dir=args.data_dir,
              progress_bar=not args.no_progress)
        return
    # Defaults < --config file < flags < --set.
    cfg = Config.from_dict(load_toml(args.config) if args.config else {})
    overrides.update(parse_override(text) for text in args.set)
    train(cfg.replace(overrides), out=args.out, data_dir=args.data_dir,
          progress_bar=not args.no_progress)


def cmd_download(args: argparse.Namespace) -> None:
    from ..data.sources import download

    print(f"{args.dataset} files are in {download(args.dataset, args.data_dir)}")
