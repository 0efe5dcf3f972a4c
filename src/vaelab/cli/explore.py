"""Latent-space figures and the HTML report: `latent`, `manifold`, `interpolate`,
`traverse`, `curves`, `report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runs.rundir import require_run
from .common import add_out_arg, add_run_args, check_positive, figure_path
from .outputs import output_path


def register(sub) -> None:
    p = sub.add_parser("latent", help="scatter of the test set's latent means by class")
    add_run_args(p, data=True)
    p.add_argument("--method", choices=("pca", "tsne", "umap"), default="pca",
                   help="projection for latents of more than 2 dimensions (default: pca; "
                   "umap needs umap-learn)")
    p.add_argument("--points", type=int, default=10_000,
                   help="test images to plot (default: 10000, all)")
    add_out_arg(p, "PNG", "RUN_DIR/figures/latent_METHOD[_nPOINTS][_seedS][_last].png, e.g. "
                "latent_pca.png, latent_tsne.png; latent[...].png for codes of at most 2 "
                "dimensions, drawn as they are; _nPOINTS when --points is fewer than the test "
                "set, _seedS when --seed is not 0, _last with --checkpoint last")
    p.set_defaults(func=cmd_latent)

    p = sub.add_parser("manifold", help="decode a grid over two latent dimensions")
    add_run_args(p, seed_help="accepted for uniformity; the manifold uses no randomness")
    p.add_argument("--n", type=int, default=20, help="grid side (default: 20)")
    p.add_argument("--dims", type=int, nargs=2, default=[0, 1], metavar=("X", "Y"),
                   help="the two latent dimensions to vary; others stay 0 (default: 0 1)")
    p.add_argument("--digit", metavar="CLASS",
                   help="conditional runs: decode the grid as this class, by number or name "
                   "(default: class 0)")
    add_out_arg(p, "PNG", "RUN_DIR/figures/manifold_zX-Y[_classN][_last].png, e.g. "
                "manifold_z0-1.png; _classN with --digit N, _last with --checkpoint last")
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
                   help="also write an animated GIF that goes there and back, beside the PNG "
                   "under the same name; without it, an older GIF of that name is removed "
                   "(default: off; on when --out ends in .gif)")
    add_out_arg(p, "x.png or x.gif (the strip goes to x.png, the animation to x.gif)",
                "RUN_DIR/figures/interpolation_testI-J[_linear][_last].png between test "
                "images I and J, interpolation_classA-B[...].png between class means, e.g. "
                "interpolation_test12-345.png, interpolation_class3-8_linear.png; _linear "
                "with --mode linear, _last with --checkpoint last")
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
    add_out_arg(p, "PNG", "RUN_DIR/figures/traversal_testI[_last].png around test image I, "
                "e.g. traversal_test42.png; _last with --checkpoint last")
    p.set_defaults(func=cmd_traverse)

    p = sub.add_parser("curves", help="training curves from metrics.jsonl (several runs "
                       "overlaid)")
    p.add_argument("runs", metavar="RUN_DIR", type=Path, nargs="+", help="run directories")
    add_out_arg(p, "PNG", "FIRST_RUN_DIR/figures/curves.png for one run, "
                "curves_vs_RUN2[_RUN3...].png over other runs (their folder names)")
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser("report", help="one self-contained HTML page for a run")
    add_run_args(p, data=True)
    add_out_arg(p, "HTML file", "RUN_DIR/report.html, RUN_DIR/report_last.html with --checkpoint "
                "last; its figures go to RUN_DIR/figures/ under the names the commands use, "
                "remade when older than the checkpoint")
    p.set_defaults(func=cmd_report)


def _model_and_test(args: argparse.Namespace):
    from ..data.datasets import class_names, load_test
    from ..device import pick_device
    from ..runs.rundir import load_run

    model, cfg = load_run(args.run, args.checkpoint, pick_device(args.device))
    return model, cfg, load_test(cfg.data, args.data_dir), class_names(cfg.data)


def cmd_latent(args: argparse.Namespace) -> None:
    from ..figures import names
    from ..figures.run_figures import latent_plot

    check_positive(points=args.points)
    figure_path(args, "latent.png")  # checked now; named once the model and data are known
    model, cfg, test, classes = _model_and_test(args)
    fewer = args.points if args.points < len(test) else None
    out = figure_path(args, names.latent(args.method, model.latent_dim, fewer, args.seed,
                                         args.checkpoint))
    out = latent_plot(model, cfg, test, classes, out, args.method, args.points, args.seed)
    print(f"wrote {out}")


def cmd_manifold(args: argparse.Namespace) -> None:
    from ..data.datasets import class_names
    from ..device import pick_device
    from ..figures import names
    from ..figures.run_figures import manifold_plot
    from ..models.latents import class_index
    from ..runs.rundir import load_run

    check_positive(n=args.n)
    figure_path(args, "manifold.png")  # checked now; named once --digit is read as a class
    model, cfg = load_run(args.run, args.checkpoint, pick_device(args.device))
    classes = class_names(cfg.data)
    label = None if args.digit is None else class_index(args.digit, classes)
    out = figure_path(args, names.manifold(args.dims, label, args.checkpoint))
    print(f"wrote {manifold_plot(model, out, args.n, args.dims, label, classes)}")


def cmd_interpolate(args: argparse.Namespace) -> None:
    from ..figures import names
    from ..figures.run_figures import interpolation_plot, pick_test_pair
    from ..models.latents import class_index

    suffixes = (".png", ".gif")
    figure_path(args, "interpolation.png", suffixes)  # checked now; named once the ends
    model, _, test, classes = _model_and_test(args)  # are known
    from_class, to_class = (None if value is None else class_index(value, classes, flag)
                            for value, flag in ((args.from_class, "--from-class"),
                                                (args.to_class, "--to-class")))
    start, end = pick_test_pair(len(test), args.start, args.end, args.seed)
    out = figure_path(args, names.interpolation(start, end, from_class, to_class, args.mode,
                                                args.checkpoint), suffixes)
    png, gif = out.with_suffix(".png"), out.with_suffix(".gif")  # --out x.gif: x.png too
    animate = args.gif or out.suffix.lower() == ".gif"
    interpolation_plot(model, test, png, start, end, from_class, to_class, args.mode,
                       args.steps, gif if animate else None, args.seed, classes)
    if animate:
        print(f"wrote {png} and {gif}")
    elif gif.exists():  # a PNG and its GIF always show the same path
        gif.unlink()
        print(f"wrote {png}; removed the older {gif} (pass --gif to write it anew)")
    else:
        print(f"wrote {png}")


def cmd_traverse(args: argparse.Namespace) -> None:
    from ..figures import names
    from ..figures.run_figures import pick_test_index, traversal_plot

    check_positive(top=args.top, steps=args.steps, limit=args.limit)
    figure_path(args, "traversal.png")  # checked now; named once the test image is drawn
    model, _, test, classes = _model_and_test(args)
    index = pick_test_index(len(test), args.index, args.seed)
    out = figure_path(args, names.traversal(index, args.checkpoint))
    out = traversal_plot(model, test, out, index, args.top, args.steps, args.limit, args.seed,
                         classes)
    print(f"wrote {out}")


def cmd_curves(args: argparse.Namespace) -> None:
    from ..figures import names, plots
    from ..figures.run_figures import read_metrics

    runs = [(Path(run).name, read_metrics(run)) for run in args.runs]  # missing runs first
    out = output_path(args.out, Path(args.runs[0]) / names.FOLDER,
                      names.curves([name for name, _ in runs[1:]]), (".png",))
    print(f"wrote {plots.curves(runs, out)}")


def cmd_report(args: argparse.Namespace) -> None:
    from ..figures import names
    from ..figures.report import write_report

    out = output_path(args.out, require_run(args.run), names.report(args.checkpoint),
                      (".html", ".htm"))
    model, cfg, test, classes = _model_and_test(args)
    out = write_report(args.run, model, cfg, test, classes, out, args.checkpoint, args.seed)
    print(f"wrote {out}")
