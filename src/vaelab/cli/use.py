"""`vaelab sample`, `vaelab reconstruct`, `vaelab export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_run_args, check_positive, figure_path


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw new images from a trained model")
    add_run_args(p)
    p.add_argument("--grid", type=int, default=15, help="grid side (default: 15, i.e. 15x15)")
    p.add_argument("--count", type=int, help="number of samples (default: grid*grid)")
    p.add_argument("--format", choices=("grid", "files"), default="grid",
                   help="one grid PNG, or one PNG per sample in a folder (default: grid)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the prior noise (default: 1.0)")
    p.add_argument("--scale", type=int, default=2, help="pixel enlargement (default: 2)")
    p.add_argument("--out", type=Path, help="output file or folder "
                   "(default: RUN_DIR/figures/samples.png or RUN_DIR/figures/samples/)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("reconstruct", help="test images beside their reconstructions")
    add_run_args(p, data=True)
    p.add_argument("--rows", type=int, default=5,
                   help="pairs of rows: originals above reconstructions (default: 5)")
    p.add_argument("--cols", type=int, default=10, help="images per row (default: 10)")
    p.add_argument("--scale", type=int, default=2, help="pixel enlargement (default: 2)")
    p.add_argument("--out", type=Path,
                   help="output PNG (default: RUN_DIR/figures/reconstructions.png)")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("export", help="write the encoder and decoder as standalone weights")
    add_run_args(p, seed=False)
    p.add_argument("out", metavar="OUT", type=Path, help="folder for encoder/ and decoder/")
    p.set_defaults(func=cmd_export)


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from ..device import pick_device
    from ..rundir import load
    from ..viz import grid, save_png

    check_positive(grid=args.grid, count=args.count, temperature=args.temperature,
                   scale=args.scale)
    count = args.count or args.grid * args.grid
    device = pick_device(args.device)
    model = load(args.run, args.checkpoint, device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    images = model.sample(count, temperature=args.temperature, generator=generator).cpu()
    if args.format == "grid":
        out = figure_path(args, "samples.png")
        save_png(grid(images, ncol=args.grid), out, scale=args.scale)
    else:
        out = figure_path(args, "samples")
        digits = len(str(count - 1))
        for i, image in enumerate(images):
            save_png(grid(image[None], ncol=1, padding=0), out / f"sample_{i:0{digits}d}.png",
                     scale=args.scale)
    print(f"wrote {count} samples to {out}")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from ..data import load_test
    from ..device import pick_device
    from ..figures import reconstruction_image
    from ..rundir import load_run

    check_positive(rows=args.rows, cols=args.cols, scale=args.scale)
    model, cfg = load_run(args.run, args.checkpoint, pick_device(args.device))
    out = reconstruction_image(model, load_test(cfg.data, args.data_dir),
                               figure_path(args, "reconstructions.png"), args.rows, args.cols,
                               args.seed, args.scale)
    print(f"wrote {args.rows * args.cols} test images (odd rows) and their reconstructions "
          f"(even rows) to {out}")


def cmd_export(args: argparse.Namespace) -> None:
    from ..export import export

    out = export(args.run, args.out, args.checkpoint)
    print(f"wrote {out / 'encoder'} and {out / 'decoder'}; load them with "
          f"vaelab.load_encoder / vaelab.load_decoder")
