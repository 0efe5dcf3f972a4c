"""`vaelab serve`: the interactive latent-space explorer in the browser (vaelab.app)."""

from __future__ import annotations

import argparse

from .common import add_run_args, check_positive


def register(sub) -> None:
    p = sub.add_parser("serve", help="explore a run's latent space in the browser: a live "
                       "map, sliders, a drawing canvas, interpolation")
    add_run_args(p, seed=False, data=True)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000,
                   help="port to listen on; 0 takes any free one (default: 8000)")
    p.add_argument("--open", action="store_true",
                   help="open the page in the web browser (default: off)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads while serving; one-image decodes are fastest on one "
                   "(the default run on 2 busy cores: 1.3 ms with 1, 22 ms with 2; "
                   "benchmarks/serve_latency.py --threads) (default: 1)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> None:
    from ..app.server import serve
    from ..errors import ConfigError

    check_positive(threads=args.threads)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    serve(args.run, host=args.host, port=args.port, open_browser=args.open,
          checkpoint=args.checkpoint, device=args.device, data_dir=args.data_dir,
          threads=args.threads)
