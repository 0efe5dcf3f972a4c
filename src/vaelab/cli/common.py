"""Pieces shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import TrainConfig, choices
from ..errors import ConfigError
from ..figures.names import FOLDER
from ..runs.rundir import CHECKPOINT_NAMES, require_run
from .outputs import output_path


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_run_args(parser: argparse.ArgumentParser, seed: bool = True, data: bool = False,
                 seed_help: str = "random seed (default: 0)") -> None:
    """RUN_DIR, --checkpoint, --device, and optionally --seed and --data-dir."""
    parser.add_argument("run", metavar="RUN_DIR", type=Path,
                        help="a run directory of vaelab train")
    parser.add_argument("--checkpoint", choices=CHECKPOINT_NAMES, default="best",
                        help="best (lowest validation loss) or last (default: best)")
    parser.add_argument("--device", default="cpu", choices=choices(TrainConfig, "device"),
                        help="where to run the model; auto picks cuda, then mps, then cpu "
                        "(default: cpu)")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help=seed_help)
    if data:
        parser.add_argument("--data-dir", type=Path, help="folder holding <dataset>/ IDX "
                            "files (default: $VAELAB_DATA_DIR, else the user cache directory)")


def check_positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def figure_path(args: argparse.Namespace, name: str, suffixes=(".png",)) -> Path:
    """The file a figure command writes: --out (a file, or a folder for `name`), else
    RUN_DIR/figures/<name>; checked, after the run directory, before any work is done."""
    return output_path(args.out, require_run(args.run) / FOLDER, name, suffixes)


def add_out_arg(parser: argparse.ArgumentParser, kind: str, default: str) -> None:
    """--out, kept as typed (a trailing "/" says it names a folder), its help stating
    `default`, the default file name."""
    parser.add_argument("--out", metavar="OUT", help=f"output {kind}, or a folder (one that "
                        f"exists, or a path ending in /) for the default name "
                        f"(default: {default})")
