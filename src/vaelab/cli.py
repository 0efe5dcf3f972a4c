"""The `vaelab` command line. Entry point: `main(argv=None) -> exit status`.

User mistakes (bad flags, missing files, wrong run directories) print one line on stderr
and return 2; Ctrl-C / SIGTERM during training save a checkpoint and return 130 / 143.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from .config import (
    Config,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    TrainConfig,
    choices,
    load_toml,
    parse_override,
)
from .device import pick_device
from .errors import ConfigError, Interrupted, VaelabError
from .rundir import CHECKPOINT_NAMES

DEFAULTS = Config()


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 32,64, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


# (flag, dotted config key, section class, help). Types and choices come from the config.
TRAIN_FLAGS: list[tuple[str, str, type, str]] = [
    ("--dataset", "data.dataset", DataConfig, "image collection"),
    ("--data", "data.mode", DataConfig,
     "binarized: fresh Bernoulli draw per pixel each epoch (the NLL protocol); grayscale"),
    ("--val-size", "data.val_size", DataConfig,
     "training images held out for validation / best-checkpoint selection"),
    ("--limit", "data.limit", DataConfig, "train on only the first N training images (0: all)"),
    ("--model", "model.arch", ModelConfig, "network family"),
    ("--latent-dim", "model.latent_dim", ModelConfig, "latent dimensions (1-256)"),
    ("--hidden", "model.hidden", ModelConfig, "MLP hidden widths, e.g. 512,256"),
    ("--channels", "model.channels", ModelConfig, "conv channels per stride-2 layer"),
    ("--dense", "model.dense", ModelConfig, "conv dense layer before the latent (0: none)"),
    ("--likelihood", "model.likelihood", ModelConfig,
     "p(x|z): bernoulli (BCE), gaussian (MSE, fixed std), gaussian-learned"),
    ("--gaussian-std", "model.gaussian_std", ModelConfig, "std of the Gaussian likelihood"),
    ("--pad32", "model.pad32", ModelConfig, "zero-pad images to 32x32 inside the model"),
    ("--beta", "objective.beta", ObjectiveConfig, "weight of the KL term"),
    ("--warmup-epochs", "objective.warmup_epochs", ObjectiveConfig,
     "epochs over which beta rises linearly from 0"),
    ("--free-bits", "objective.free_bits", ObjectiveConfig,
     "nats per latent dimension not penalised"),
    ("--epochs", "train.epochs", TrainConfig, "passes over the training images"),
    ("--batch-size", "train.batch_size", TrainConfig, "images per step"),
    ("--lr", "train.lr", TrainConfig, "learning rate"),
    ("--optimizer", "train.optimizer", TrainConfig, "optimizer"),
    ("--weight-decay", "train.weight_decay", TrainConfig, "weight decay"),
    ("--schedule", "train.schedule", TrainConfig, "learning-rate schedule"),
    ("--seed", "train.seed", TrainConfig, "random seed (weights, data order, noise)"),
    ("--device", "train.device", TrainConfig, "auto picks cuda, then mps, then cpu"),
    ("--threads", "train.threads", TrainConfig, "CPU threads (0: torch's default)"),
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


def _add_common(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    parser.add_argument("run", metavar="RUN_DIR", type=Path, help="a run directory of vaelab train")
    parser.add_argument("--checkpoint", choices=CHECKPOINT_NAMES, default="best",
                        help="best (lowest validation loss) or last (default: best)")
    parser.add_argument("--device", default="cpu", choices=choices(TrainConfig, "device"),
                        help="where to run the model; auto picks cuda, then mps, then cpu "
                        "(default: cpu)")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def build_parser() -> Parser:
    parser = Parser(prog="vaelab", description="Variational autoencoders on MNIST-style "
                    "images: train, sample, reconstruct, export.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"vaelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)

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
    _add_train_flags(p)

    p = sub.add_parser("sample", help="draw new images from a trained model")
    _add_common(p)
    p.add_argument("--grid", type=int, default=15, help="grid side (default: 15, i.e. 15x15)")
    p.add_argument("--count", type=int, help="number of samples (default: grid*grid)")
    p.add_argument("--format", choices=("grid", "files"), default="grid",
                   help="one grid PNG, or one PNG per sample in a folder (default: grid)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the prior noise (default: 1.0)")
    p.add_argument("--scale", type=int, default=2, help="pixel enlargement (default: 2)")
    p.add_argument("--out", type=Path, help="output file or folder "
                   "(default: RUN_DIR/figures/samples.png or RUN_DIR/figures/samples/)")

    p = sub.add_parser("reconstruct", help="test images beside their reconstructions")
    _add_common(p)
    p.add_argument("--rows", type=int, default=5,
                   help="pairs of rows: originals above reconstructions (default: 5)")
    p.add_argument("--cols", type=int, default=10, help="images per row (default: 10)")
    p.add_argument("--scale", type=int, default=2, help="pixel enlargement (default: 2)")
    p.add_argument("--data-dir", type=Path, help="folder holding <dataset>/ IDX files")
    p.add_argument("--out", type=Path,
                   help="output PNG (default: RUN_DIR/figures/reconstructions.png)")

    p = sub.add_parser("export", help="write the encoder and decoder as standalone weights")
    _add_common(p, seed=False)
    p.add_argument("out", metavar="OUT", type=Path, help="folder for encoder/ and decoder/")

    p = sub.add_parser("download", help="fetch a dataset's IDX files for offline use")
    p.add_argument("--dataset", choices=choices(DataConfig, "dataset"), default="mnist",
                   help="dataset (default: mnist)")
    p.add_argument("--data-dir", type=Path, help="target folder "
                   "(default: $VAELAB_DATA_DIR, else the user cache directory)")
    return parser


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key) for _, key, _, _ in TRAIN_FLAGS
            if getattr(args, key) is not None}


def cmd_train(args: argparse.Namespace) -> None:
    from .train import train

    overrides = _flag_overrides(args)
    if args.resume is not None:
        if args.out is not None or args.config or args.set or set(overrides) - {"train.epochs"}:
            raise ConfigError("--resume takes its settings from the run's config.json; "
                              "only --epochs (and --data-dir, --no-progress) may be given")
        from .checkpoint import read_config
        from .rundir import require_run

        cfg = read_config(require_run(args.resume)).replace(overrides)
        train(cfg, resume=args.resume, data_dir=args.data_dir,
              progress_bar=not args.no_progress)
        return
    # Defaults < --config file < flags < --set.
    cfg = Config.from_dict(load_toml(args.config) if args.config else {})
    overrides.update(parse_override(text) for text in args.set)
    train(cfg.replace(overrides), out=args.out, data_dir=args.data_dir,
          progress_bar=not args.no_progress)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from .rundir import load
    from .viz import grid, save_png

    _check_positive(grid=args.grid, count=args.count, temperature=args.temperature,
                    scale=args.scale)
    count = args.count or args.grid * args.grid
    device = pick_device(args.device)
    model = load(args.run, args.checkpoint, device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    images = model.sample(count, temperature=args.temperature, generator=generator).cpu()
    if args.format == "grid":
        out = args.out or args.run / "figures" / "samples.png"
        save_png(grid(images, ncol=args.grid), out, scale=args.scale)
    else:
        out = args.out or args.run / "figures" / "samples"
        digits = len(str(count - 1))
        for i, image in enumerate(images):
            save_png(grid(image[None], ncol=1, padding=0), out / f"sample_{i:0{digits}d}.png",
                     scale=args.scale)
    print(f"wrote {count} samples to {out}")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    import torch

    from .data import load_test, to_float
    from .rundir import load_run
    from .viz import grid, pairs, save_png

    _check_positive(rows=args.rows, cols=args.cols, scale=args.scale)
    device = pick_device(args.device)
    model, cfg = load_run(args.run, args.checkpoint, device)
    test = load_test(cfg.data, args.data_dir)
    count = args.rows * args.cols
    if count > len(test):
        raise ConfigError(f"--rows x --cols asks for {count} images; the test set has "
                          f"{len(test)}")
    index = torch.randperm(len(test), generator=torch.Generator().manual_seed(args.seed))
    x = to_float(test.images[index[:count]]).to(device)
    out = args.out or args.run / "figures" / "reconstructions.png"
    save_png(grid(pairs(x, model.reconstruct(x), args.cols).cpu(), ncol=args.cols), out,
             scale=args.scale)
    print(f"wrote {count} test images (odd rows) and their reconstructions (even rows) "
          f"to {out}")


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export

    out = export(args.run, args.out, args.checkpoint)
    print(f"wrote {out / 'encoder'} and {out / 'decoder'}; load them with "
          f"vaelab.load_encoder / vaelab.load_decoder")


def cmd_download(args: argparse.Namespace) -> None:
    from .data import SPLIT_FILES, ensure_files

    folder = ensure_files(args.dataset, args.data_dir, download=True,
                          splits=tuple(SPLIT_FILES))
    print(f"{args.dataset} files are in {folder}")


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "reconstruct": cmd_reconstruct,
            "export": cmd_export, "download": cmd_download}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except Interrupted as e:
        print(f"vaelab: {e}", file=sys.stderr)
        return e.exit_code
    except VaelabError as e:
        print(f"vaelab {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaelab: interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__

