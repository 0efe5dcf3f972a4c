"""The `vaelab` command line. Entry point: `main(argv=None) -> exit status`.

User mistakes (bad flags, missing files, wrong run directories) print one line on stderr
and return 2; Ctrl-C / SIGTERM during training save a checkpoint and return 130 / 143.
"""

from __future__ import annotations

import sys

from ..errors import Interrupted, VaelabError
from . import evaluation, explore, info, training, use
from .common import Parser


def build_parser() -> Parser:
    from .. import __version__

    parser = Parser(prog="vaelab", description="Variational autoencoders on MNIST-style "
                    "images: train, sample, reconstruct, explore the latent space, report.")
    parser.add_argument("--version", action="version", version=f"vaelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    for module in (training, use, explore, evaluation, info):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
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
