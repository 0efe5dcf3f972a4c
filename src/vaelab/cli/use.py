"""`vaelab sample`, `vaelab reconstruct`, `vaelab style`, `vaelab export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..runs.export import FORMATS as EXPORT_FORMATS
from ..runs.rundir import require_run
from ..samplers import DEFAULT_SAMPLER, GMM_TEMPERATURE, SAMPLERS
from .common import add_out_arg, add_run_args, check_positive, figure_path
from .outputs import output_folder


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw new images from a trained model")
    add_run_args(p, data=True)
    p.add_argument("--grid", type=int, default=15, help="grid side (default: 15, i.e. 15x15)")
    p.add_argument("--count", type=int, help="number of samples (default: grid*grid)")
    p.add_argument("--format", choices=("grid", "files"), default="grid",
                   help="one grid PNG, or one PNG per sample in a folder (default: grid)")
    p.add_argument("--temperature", type=float,
                   help="scale of the sampler's spread (default: 0.8 for gmm, 1 for the prior)")
    p.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER,
                   help="what draws the codes: a Gaussian mixture fitted to training codes "
                   "(gmm; fitted once on first use for runs that lack it), or the prior "
                   f"(default: {DEFAULT_SAMPLER})")
    p.add_argument("--scale", type=int,
                   help="pixel enlargement (default: 2 for a grid; 1 for --format files, "
                   "28x28 files that vaelab score reads unchanged)")
    p.add_argument("--digit", metavar="CLASS",
                   help="conditional runs: draw only this class, by number (0-9) or name, "
                   "e.g. 7 or sneaker (default: a balanced mix of classes)")
    p.add_argument("--grid-by-class", action="store_true",
                   help="conditional runs: one row per class, --grid samples each, the "
                   "class names at the left (default: off)")
    p.add_argument("--out", metavar="OUT",
                   help="output PNG, or a folder (one that exists, or a path ending in /) "
                   "for the default name; with --format files, the folder for the PNGs "
                   "(default: RUN_DIR/figures/samples[_classN]_SAMPLER_tTEMPERATURE"
                   "[_seedS][_last].png, e.g. samples_gmm_t0.8.png, samples_class7_prior_t1"
                   "_seed3.png; a folder of that name without .png with --format files; "
                   "samples_by_class_... with --grid-by-class; _seedS when --seed is not 0, "
                   "_last with --checkpoint last)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("reconstruct", help="test images beside their reconstructions")
    add_run_args(p, data=True)
    p.add_argument("--rows", type=int, default=5,
                   help="pairs of rows: originals above reconstructions (default: 5)")
    p.add_argument("--cols", type=int, default=10, help="images per row (default: 10)")
    p.add_argument("--scale", type=int, default=2, help="pixel enlargement (default: 2)")
    add_out_arg(p, "PNG", "RUN_DIR/figures/reconstructions[_seedS][_last].png: _seedS when "
                "--seed is not 0, _last with --checkpoint last")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("style", help="conditional runs: test images' codes decoded under "
                       "every class (style transfer)")
    add_run_args(p, data=True, seed_help="picks the test images (default: 0)")
    p.add_argument("--count", type=int, default=8,
                   help="test images, one row each (default: 8)")
    add_out_arg(p, "PNG", "RUN_DIR/figures/style[_seedS][_last].png: _seedS when --seed is "
                "not 0, _last with --checkpoint last")
    p.set_defaults(func=cmd_style)

    p = sub.add_parser("export", help="write the encoder and decoder as standalone weights "
                       "(safetensors) or graphs (ONNX)")
    add_run_args(p, seed=False)
    p.add_argument("out", metavar="OUT", help="folder for encoder/ and decoder/, and with "
                   "--format onnx encoder.onnx and decoder.onnx (created if missing)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="safetensors",
                   help="safetensors: encoder/ and decoder/ folders of weights that "
                   "vaelab.load_encoder / load_decoder read (one-layer models: mlp, conv, "
                   "cvae); onnx: also encoder.onnx and decoder.onnx, graphs that onnxruntime "
                   "runs without vaelab, for every model, hvae too (needs pip install "
                   '"vaelab[onnx]") (default: safetensors)')
    p.set_defaults(func=cmd_export)


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from ..data.datasets import class_names
    from ..data.images import grid, save_png
    from ..device import pick_device
    from ..figures import names
    from ..models.latents import balanced_labels, class_index, require_conditional
    from ..runs.rundir import load_run

    check_positive(grid=args.grid, count=args.count, temperature=args.temperature,
                   scale=args.scale)
    if args.grid_by_class and (args.digit is not None or args.count or args.format != "grid"):
        raise ConfigError("--grid-by-class draws one grid of --grid samples per class; it "
                          "does not combine with --digit, --count or --format files")
    files = args.format == "files"
    spread = args.temperature if args.temperature is not None else (
        GMM_TEMPERATURE if args.sampler == "gmm" else 1.0)

    def name(label: int | None = None) -> str:
        return names.samples(args.sampler, spread, label, args.seed, args.checkpoint,
                             by_class=args.grid_by_class, folder=files)

    def out_path(label: int | None = None) -> Path:
        if files:
            return output_folder(args.out, require_run(args.run) / names.FOLDER / name(label))
        return figure_path(args, name(label))

    out_path()  # checked before the model loads; named once --digit is read as a class
    scale = args.scale or (1 if files else 2)
    device = pick_device(args.device)
    model, cfg = load_run(args.run, args.checkpoint, device, args.data_dir)
    classes = class_names(cfg.data)
    if args.grid_by_class:
        from ..figures.run_figures import class_samples

        out = class_samples(model, classes, out_path(), args.grid, args.temperature,
                            args.seed, scale, args.sampler)
        print(f"wrote {args.grid} samples of each of the {len(classes)} classes "
              f"(one row each) to {out}")
        return
    count = args.count or args.grid * args.grid
    which, label = "", None
    if args.digit is not None:
        require_conditional(model, "--digit")
        label = class_index(args.digit, classes)
        which = f" of class {classes[label]}"
    elif model.conditional:
        which = (f", a balanced mix of the {len(classes)} classes (labels cycling "
                 f"0..{len(classes) - 1}; pick one with --digit, or use --grid-by-class)")
    out = out_path(label)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    images = model.sample(count, temperature=args.temperature, generator=generator,
                          label=balanced_labels(model, count) if label is None else label,
                          sampler=args.sampler).cpu()
    if files:
        digits = len(str(count - 1))
        for i, image in enumerate(images):
            save_png(grid(image[None], ncol=1, padding=0), out / f"sample_{i:0{digits}d}.png",
                     scale=scale)
    else:
        save_png(grid(images, ncol=args.grid), out, scale=scale)
    print(f"wrote {count} samples{which} to {out} ({args.sampler} sampler, "
          f"temperature {spread:g})")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from ..data.datasets import load_test
    from ..device import pick_device
    from ..figures import names
    from ..figures.run_figures import reconstruction_image
    from ..runs.rundir import load_run

    check_positive(rows=args.rows, cols=args.cols, scale=args.scale)
    out = figure_path(args, names.reconstructions(args.seed, args.checkpoint))
    model, cfg = load_run(args.run, args.checkpoint, pick_device(args.device))
    out = reconstruction_image(model, load_test(cfg.data, args.data_dir), out, args.rows,
                               args.cols, args.seed, args.scale)
    print(f"wrote {args.rows * args.cols} test images (odd rows) and their reconstructions "
          f"(even rows) to {out}")


def cmd_style(args: argparse.Namespace) -> None:
    from ..data.datasets import class_names, load_test
    from ..device import pick_device
    from ..figures import names
    from ..figures.run_figures import style_plot
    from ..runs.rundir import load_run

    check_positive(count=args.count)
    out = figure_path(args, names.style(args.seed, args.checkpoint))
    model, cfg = load_run(args.run, args.checkpoint, pick_device(args.device))
    out = style_plot(model, load_test(cfg.data, args.data_dir),
                     class_names(cfg.data), out, args.count, args.seed)
    print(f"wrote {args.count} test images (first column), each decoded under every class, "
          f"to {out}")


def cmd_export(args: argparse.Namespace) -> None:
    from ..runs.export import export

    require_run(args.run)  # a missing run is the error to report first
    written = export(args.run, output_folder(args.out, flag="OUT"), args.checkpoint,
                     args.format)
    folders = [str(path) for path in written if path.suffix != ".onnx"]
    graphs = [str(path) for path in written if path.suffix == ".onnx"]
    if folders:
        print(f"wrote {' and '.join(folders)} (safetensors); load them with "
              f"vaelab.load_encoder / vaelab.load_decoder")
    if graphs:
        print(f"wrote {' and '.join(graphs)} (ONNX, for onnxruntime): x [, label] -> mu, "
              f"logvar and z [, label] -> image in [0, 1], any batch size")
    if graphs and not folders:
        print("no safetensors parts: this model's encoder and decoder share its top-down path")
