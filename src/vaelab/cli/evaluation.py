"""`vaelab evaluate`, `vaelab compare`, `vaelab score`, `vaelab classifier train`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError, DataError
from .common import add_run_args, check_positive
from .outputs import output_path


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="test-set NLL, ELBO, FID and latent quality; "
                       "writes RUN_DIR/eval.json")
    add_run_args(p, data=True, seed_help="seed of the importance samples and of the "
                 "FID samples (default: 0)")
    p.add_argument("--k", type=int, default=1000,
                   help="importance samples per image (default: 1000; 5000 is the paper "
                   "protocol)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="fp32",
                   help="precision of the networks in the importance sampling; bf16 pays "
                   "only where it is native (about 1.6x faster with AMX, several times "
                   "slower where emulated); auto picks it only there (default: fp32)")
    p.add_argument("--images", type=int, default=0,
                   help="importance-sample only the first N test images (default: 0, all)")
    p.add_argument("--no-fid", action="store_true",
                   help="skip FID and the classifier score (they need the classifier)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="one Markdown table of several runs' evaluations")
    p.add_argument("runs", metavar="RUN_DIR", type=Path, nargs="+", help="evaluated runs")
    p.add_argument("--plot", metavar="OUT.png",
                   help="also draw the rate-distortion plane (test KL against test "
                   "reconstruction, one point per run, labelled with its beta) to this PNG, "
                   "or as rate_distortion.png in this folder (one that exists, or a path "
                   "ending in /) (default: no plot)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("score", help="anomaly scores of image files, flagged against the "
                       "run's validation images")
    add_run_args(p, data=True, seed_help="seed of the posterior samples (and of the "
                 "importance samples with --k) (default: 0)")
    p.add_argument("images", metavar="IMAGE", type=Path, nargs="+",
                   help="image files (PNG, JPEG, anything Pillow reads) or folders of them; "
                   "read at the run's image size and channels (for MNIST runs 28x28 "
                   "grayscale, white digits on black; other sizes are resized; nothing is "
                   "inverted)")
    p.add_argument("--k", type=int, default=1,
                   help="1: score by the negative ELBO; K > 1: by the importance-sampled "
                   "NLL -L_K (default: 1)")
    p.add_argument("--quantile", type=float, default=0.99,
                   help="flag images scoring above this quantile of the validation images' "
                   "scores (default: 0.99)")
    p.add_argument("--label", type=int,
                   help="conditional runs: score under this class (default: under every "
                   "class, keeping the best score)")
    p.add_argument("--json", metavar="OUT", help="also write the numbers as JSON to this "
                   "file, or to scores.json in this folder (one that exists, or a path "
                   "ending in /)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("classifier", help="the feature classifier behind FID")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION",
                               parser_class=type(p))
    t = actions.add_parser("train", help="train (or retrain) and cache the classifier")
    t.add_argument("--dataset", default="mnist",
                   help="a built-in dataset or a labelled folder or array of images, as for "
                   "vaelab train (default: mnist)")
    t.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: 5)")
    t.add_argument("--data-dir", type=Path, help="folder holding <dataset>/ IDX files")
    t.set_defaults(func=cmd_classifier_train)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..data.datasets import load_dataset
    from ..device import pick_device
    from ..evaluation.evaluate import evaluate, format_table, write
    from ..runs.rundir import load_run
    from ..training.speed import resolve_precision

    check_positive(k=args.k)
    if args.images < 0:
        raise ConfigError(f"--images must be >= 0, got {args.images}")
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    model, cfg = load_run(args.run, args.checkpoint, device, args.data_dir)
    data = load_dataset(cfg.data, args.data_dir, device)
    results = {"checkpoint": args.checkpoint, "seed": args.seed,
               **evaluate(model, cfg, data, args.k, args.seed, fid=not args.no_fid,
                          data_dir=args.data_dir, bf16=precision == "bf16",
                          images=args.images)}
    path = write(args.run, results)
    print(format_table(results))
    print(f"wrote {path}")


def cmd_compare(args: argparse.Namespace) -> None:
    from ..evaluation.evaluate import compare, rate_distortion_points

    if args.plot is not None:
        from ..figures.plots import rate_distortion

        points = rate_distortion_points(args.runs)  # checks the runs before printing
        out = output_path(args.plot, ".", "rate_distortion.png", (".png",), flag="--plot")
        print(compare(args.runs))
        print(f"wrote {rate_distortion(points, out)}")
    else:
        print(compare(args.runs))


def cmd_score(args: argparse.Namespace) -> None:
    from ..device import pick_device
    from ..evaluation.score import (
        check_quantile,
        format_report,
        load_images,
        score_files,
        unreadable_line,
    )
    from ..runs.checkpoint import read_config, resolve, write_json
    from ..runs.rundir import checkpoint_dir, load_run, require_run

    check_positive(k=args.k)
    check_quantile(args.quantile)
    json_path = None if args.json is None else output_path(
        args.json, Path.cwd(), "scores.json", (".json",), flag="--json")
    shape = read_config(require_run(args.run)).model.image_shape
    images = load_images(args.images, shape)  # before the model: no readable file fails fast
    model, cfg = load_run(args.run, args.checkpoint, pick_device(args.device))
    checkpoint = resolve(checkpoint_dir(args.run, args.checkpoint))
    results = {"run": str(args.run), "checkpoint": args.checkpoint,
               **score_files(model, cfg, images, k=args.k, quantile=args.quantile,
                             seed=args.seed, label=args.label, data_dir=args.data_dir,
                             checkpoint=checkpoint)}
    print(format_report(results))
    if json_path is not None:
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            write_json(json_path, results)
        except OSError as e:
            raise ConfigError(f"--json {args.json}: cannot write ({e.strerror or e})") from None
        print(f"wrote {json_path}")
    if images.unreadable:  # the others are scored and written: now exit 2, naming them
        raise DataError(unreadable_line(images.unreadable, len(images.paths)))


def cmd_classifier_train(args: argparse.Namespace) -> None:
    from ..evaluation.classifier import EPOCHS, save_classifier, train_classifier

    epochs = args.epochs or EPOCHS
    check_positive(epochs=epochs)
    model, accuracy = train_classifier(args.dataset, args.data_dir, epochs)
    folder = save_classifier(model, args.dataset, accuracy, epochs)
    print(f"test accuracy {accuracy:.4f}; saved to {folder}")
