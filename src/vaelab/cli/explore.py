"""Latent-space figures and the HTML report: `latent`, `manifold`, `interpolate`,
`traverse`, `curves`, `report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_run_args, check_positive, figure_path


def register(sub) -> None:
    p = sub.add_parser("latent", help="scatter of the test set's latent means by class")
    add_run_args(p, data=True)
    p.add_argument("--method", choices=("pca", "tsne", "umap"), default="pca",
                   help="projection for latents of more than 2 dimensions (default: pca; "
                   "umap needs umap-learn)")
    p.add_argument("--points", type=int, default=10_000,
                   help="test images to plot (default: 10000, all)")
    p.add_argument("--out", type=Path, help="output PNG (default: RUN_DIR/figures/latent.png)")
    p.set_defaults(func=cmd_latent)

    p = sub.add_parser("manifold", help="decode a grid over two latent dimensions")
    add_run_args(p, seed_help="accepted for uniformity; the manifold uses no randomness")
    p.add_argument("--n", type=int, default=20, help="grid side (default: 20)")
    p.add_argument("--dims", type=int, nargs=2, default=[0, 1], metavar=("X", "Y"),
                   help="the two latent dimensions to vary; others stay 0 (default: 0 1)")
    p.add_argument("--digit", metavar="CLASS",
                   help="conditional runs: decode the grid as this class, by number or name "
                   "(default: class 0)")
    p.add_argument("--out", type=Path,
                   help="output PNG (default: RUN_DIR/figures/manifold.png)")
    p.set_defaults(func=cmd_manifold)

    p = sub.add_parser("interpolate", help="decode the path between two test images or "
                       "two class means")
    add_run_args(p, data=True, seed_help="picks the two test images when --from/--to are "
                 "not given (default: 0)")
    p.add_argument("--from", dest="start", type=int, metavar="I",
                   help="index of the first test image (default: drawn with --seed)")
    p.add_argument("--to", dest="end", type=int, metavar="J",
                   help="index of the last test image (default: drawn with --seed)")
    p.add_argument("--from-class", metavar="CLASS",
                   help="start at this class's mean code; a number or a class name "
                   "(default: off)")
    p.add_argument("--to-class", metavar="CLASS",
                   help="end at this class's mean code (default: off)")
    p.add_argument("--mode", choices=("linear", "slerp"), default="slerp",
                   help="straight line or great circle (default: slerp)")
    p.add_argument("--steps", type=int, default=10, help="images on the path (default: 10)")
    p.add_argument("--gif", action="store_true",
                   help="also write an animated GIF that goes there and back")
    p.add_argument("--out", type=Path,
                   help="output PNG (default: RUN_DIR/figures/interpolation.png; the GIF "
                   "beside it)")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("traverse", help="vary one latent dimension at a time")
    add_run_args(p, data=True, seed_help="picks the base test image when --index is not "
                 "given (default: 0)")
    p.add_argument("--index", type=int,
                   help="test image whose code is the base (default: drawn with --seed)")
    p.add_argument("--top", type=int, default=10,
                   help="show the K dimensions with the most KL (default: 10)")
    p.add_argument("--steps", type=int, default=9, help="values per row (default: 9)")
    p.add_argument("--limit", type=float, default=3.0,
                   help="vary each dimension from -limit to +limit (default: 3)")
    p.add_argument("--out", type=Path,
                   help="output PNG (default: RUN_DIR/figures/traversal.png)")
    p.set_defaults(func=cmd_traverse)

    p = sub.add_parser("curves", help="training curves from metrics.jsonl (several runs "
                       "overlaid)")
    p.add_argument("runs", metavar="RUN_DIR", type=Path, nargs="+", help="run directories")
    p.add_argument("--out", type=Path,
                   help="output PNG (default: FIRST_RUN_DIR/figures/curves.png)")
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser("report", help="one self-contained HTML page for a run")
    add_run_args(p, data=True)
    p.add_argument("--out", type=Path, help="output HTML (default: RUN_DIR/report.html)")
    p.set_defaults(func=cmd_report)


def _model_and_test(args: argparse.Namespace):
    from ..data.datasets import DATASETS, load_test
    from ..device import pick_device
    from ..runs.rundir import load_run

    model, cfg = load_run(args.run, args.checkpoint, pick_device(args.device))
    return model, cfg, load_test(cfg.data, args.data_dir), DATASETS[cfg.data.dataset].classes


def cmd_latent(args: argparse.Namespace) -> None:
    from ..figures.run_figures import latent_plot

    check_positive(points=args.points)
    model, cfg, test, classes = _model_and_test(args)
    out = latent_plot(model, cfg, test, classes, figure_path(args, "latent.png"),
                      args.method, args.points, args.seed)
    print(f"wrote {out}")


def cmd_manifold(args: argparse.Namespace) -> None:
    from ..data.datasets import DATASETS
    from ..device import pick_device
    from ..figures.run_figures import manifold_plot
    from ..models.latents import class_index
    from ..runs.rundir import load_run

    check_positive(n=args.n)
    model, cfg = load_run(args.run, args.checkpoint, pick_device(args.device))
    classes = DATASETS[cfg.data.dataset].classes
    label = None if args.digit is None else class_index(args.digit, classes)
    out = manifold_plot(model, figure_path(args, "manifold.png"), args.n, args.dims, label,
                        classes)
    print(f"wrote {out}")


def cmd_interpolate(args: argparse.Namespace) -> None:
    from ..figures.run_figures import interpolation_plot
    from ..models.latents import class_index

    model, _, test, classes = _model_and_test(args)
    from_class, to_class = (None if value is None else class_index(value, classes, flag)
                            for value, flag in ((args.from_class, "--from-class"),
                                                (args.to_class, "--to-class")))
    out = figure_path(args, "interpolation.png")
    gif = out.with_suffix(".gif") if args.gif else None
    interpolation_plot(model, test, out, args.start, args.end, from_class, to_class,
                       args.mode, args.steps, gif, args.seed, classes)
    print(f"wrote {out}" + (f" and {gif}" if gif else ""))


def cmd_traverse(args: argparse.Namespace) -> None:
    from ..figures.run_figures import traversal_plot

    check_positive(top=args.top, steps=args.steps, limit=args.limit)
    model, _, test, classes = _model_and_test(args)
    out = traversal_plot(model, test, figure_path(args, "traversal.png"), args.index,
                         args.top, args.steps, args.limit, args.seed, classes)
    print(f"wrote {out}")


def cmd_curves(args: argparse.Namespace) -> None:
    from ..figures.run_figures import curves_plot

    out = args.out or args.runs[0] / "figures" / "curves.png"
    print(f"wrote {curves_plot(args.runs, out)}")


def cmd_report(args: argparse.Namespace) -> None:
    from ..figures.report import write_report

    model, cfg, test, classes = _model_and_test(args)
    out = write_report(args.run, model, cfg, test, classes, args.out, args.checkpoint,
                       args.seed)
    print(f"wrote {out}")
