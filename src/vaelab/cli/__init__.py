"""The `vaelab` command line. Entry point: `main(argv=None) -> exit status`.

User mistakes (bad flags, missing files, wrong run directories) print one line on stderr
and return 2; Ctrl-C / SIGTERM during training save a checkpoint and return 130 / 143.
"""

from __future__ import annotations

import difflib
import sys
import warnings

from ..errors import Interrupted, SlowPathWarning, VaelabError
from . import evaluation, explore, info, serve, training, use
from .common import Parser


class CommandParser(Parser):
    """A subcommand's parser: an argument it does not know is its own error, pointing to its
    own help (argparse would leave it to the top-level parser, which names only `vaelab`)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._suggest(extras)}")
        return namespace, extras

    def _suggest(self, extras: list[str]) -> str:
        flags = [flag for action in self._actions for flag in action.option_strings]
        for extra in extras:
            if extra.startswith("--"):
                close = difflib.get_close_matches(extra.split("=")[0], flags, n=1)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""


def build_parser() -> Parser:
    from .. import __version__

    parser = Parser(prog="vaelab", description="Variational autoencoders on MNIST-style "
                    "images: train, sample, reconstruct, explore the latent space, report.")
    parser.add_argument("--version", action="version", version=f"vaelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=CommandParser)
    for module in (training, use, explore, serve, evaluation, info):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("once", SlowPathWarning)
            warnings.showwarning = _one_line_warning(args.command, warnings.showwarning)
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


def _one_line_warning(command: str, show):
    """vaelab's own warnings as `vaelab COMMAND: warning: ...` on stderr; others as usual."""
    def showwarning(message, category, *args, **kwargs):
        if issubclass(category, SlowPathWarning):
            print(f"vaelab {command}: warning: {_one_line(message)}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)
    return showwarning


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
