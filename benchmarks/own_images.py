"""Your own images: a folder of JPEG files (CIFAR-10 as a user would have it) against the same
images in one .npz array, then a conv VAE trained on the folder for a fixed wall-clock time.

    python benchmarks/own_images.py FOLDER [--minutes 14] [--avx2]

FOLDER holds train/<class>/*.jpg and test/<class>/*.jpg (e.g. the CIFAR-10 JPEG archive,
unpacked). Measures:
  1. seconds from launch to the first training step (the "vaelab: training" line) of
     `vaelab train --dataset FOLDER`, with an empty decoded cache and again with it filled;
  2. training images/s on the folder and on the same images saved as .npz (one epoch each);
  3. a conv VAE (latent 64) with a 5-component discretized logistic mixture likelihood,
     beta 1 after a one-epoch KL warm-up, trained on the folder for --minutes (`--time`),
     then its test negative ELBO in bits per dimension on all test images and the
     importance-sampled NLL (K=100) on the first 1,000; its samples and reconstructions
     are written to docs/ when --docs is given.
Prints a table; writes JSON (default benchmarks/results/own_images.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from default_run import AVX2_ENV, ROOT, cpu_kind, report

VAELAB = [sys.executable, "-m", "vaelab"]
MODEL = ["--model", "conv", "--latent-dim", "64", "--logistic-components", "5"]
QUICK = [*MODEL, "--epochs", "1", "--limit", "10000", "--no-progress", "--sample-grid", "4"]


def until_training(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds from launch to the "vaelab: training" line, whole run's seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    first = None
    for line in process.stdout:
        if first is None and line.startswith("vaelab: training"):
            first = time.perf_counter() - started
    if process.wait() != 0 or first is None:
        raise SystemExit(f"{' '.join(argv)} failed")
    return first, time.perf_counter() - started


def images_per_second(run: Path) -> float:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["images_per_second"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--minutes", type=float, default=14.0)
    parser.add_argument("--avx2", action="store_true", help="limit to AVX2, fp32")
    parser.add_argument("--docs", action="store_true", help="write the figures to docs/")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/own_images.json")
    args = parser.parse_args(argv)
    if args.avx2 and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]],
                  {**os.environ, **AVX2_ENV})
    cpu = cpu_kind()
    print(f"CPU: {cpu}", flush=True)
    folder = args.folder.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VAELAB_CACHE_DIR": f"{tmp}/cache", "PYTHONUNBUFFERED": "1"}
        start = {}
        for which in ("empty cache", "filled cache"):
            run = Path(tmp) / which.replace(" ", "-")
            start[which] = until_training([*VAELAB, "train", "--dataset", str(folder),
                                           "--out", str(run), *QUICK], env)
            print(f"{which}: training after {start[which][0]:.1f} s", flush=True)
        folder_speed = images_per_second(Path(tmp) / "filled-cache")
        from vaelab.config import DataConfig
        from vaelab.data.sources import read_images

        os.environ["VAELAB_CACHE_DIR"] = env["VAELAB_CACHE_DIR"]
        found = read_images(DataConfig(dataset=str(folder)))
        npz = Path(tmp) / "images.npz"
        import numpy as np

        np.savez(npz, **{f"x_{s}": found.images[s].permute(0, 2, 3, 1).numpy()
                         for s in ("train", "test")},
                 **{f"y_{s}": found.labels[s].numpy() for s in ("train", "test")},
                 classes=np.array(found.classes))
        until_training([*VAELAB, "train", "--dataset", str(npz), "--out", f"{tmp}/npz",
                        *QUICK], env)
        npz_speed = images_per_second(Path(tmp) / "npz")
        print(f"images/s: folder {folder_speed:,.0f}, npz {npz_speed:,.0f}", flush=True)

        run = Path(tmp) / "conv"
        train = [*VAELAB, "train", "--dataset", str(folder), *MODEL, "--beta", "1",
                 "--warmup-epochs", "1", "--time", f"{args.minutes:g}m", "--out", str(run),
                 "--no-progress"]
        _, train_seconds = until_training(train, env)
        subprocess.run([*VAELAB, "evaluate", str(run), "--k", "100", "--images", "1000",
                        "--no-fid"], env=env, check=True, stdout=subprocess.DEVNULL)
        results = json.loads((run / "eval.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        if args.docs:
            for command, name in ((["sample", str(run), "--grid", "10"], "cifar_samples.png"),
                                  (["reconstruct", str(run), "--rows", "3"],
                                   "cifar_reconstructions.png")):
                subprocess.run([*VAELAB, *command, "--out", str(ROOT / "docs" / name)],
                               env=env, check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(env["VAELAB_CACHE_DIR"], ignore_errors=True)
    measured = {
        "cpu": cpu, "start_empty_cache": start["empty cache"][0],
        "start_filled_cache": start["filled cache"][0], "folder_images_per_sec": folder_speed,
        "npz_images_per_sec": npz_speed, "train_seconds": train_seconds,
        "epochs": summary["epochs"], "test_bits_per_dim": results["test_bits_per_dim"],
        "test_neg_elbo": results["test_neg_elbo"], "nll_bits_per_dim": results["nll_bits_per_dim"],
        "nll_k": results["nll_k"], "nll_images": results["nll_images"]}
    rows = [
        ("seconds to the first step, empty cache", f"{measured['start_empty_cache']:.1f}"),
        ("seconds to the first step, filled cache", f"{measured['start_filled_cache']:.1f}"),
        ("training img/s: folder / npz", f"{folder_speed:,.0f} / {npz_speed:,.0f}"),
        (f"conv VAE, --time {args.minutes:g}m: wall, epochs",
         f"{train_seconds:.0f} s, {summary['epochs']} epochs"),
        ("test -ELBO, all test images", f"{results['test_bits_per_dim']:.3f} bits/dim "
         f"({results['test_neg_elbo']:.1f} nats)"),
        (f"test NLL, K={results['nll_k']}, first {results['nll_images']:,}",
         f"{results['nll_bits_per_dim']:.3f} bits/dim"),
    ]
    report([f"measure ({cpu})", "value"], rows, measured, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
