"""How long the README's commands take: each one run as a user runs it, on a fresh default run.

    python benchmarks/readme_commands.py            # this CPU as it is
    python benchmarks/readme_commands.py --avx2     # limited to AVX2 and fp32, as on most laptops

Trains `vaelab train` with no flags in a temporary folder, then times every command of the
README that reads a run (sample, reconstruct, latent with PCA and t-SNE, manifold,
interpolate, traverse, curves, report, evaluate, score with and without its cached
threshold, info) and `vaelab classifier train`, which the FID needs. Each command is run
once, start to exit, in a fresh process. `--paper` adds `evaluate --k 5000` (about five
times the K=1000 evaluation). Prints a Markdown table and writes JSON (default
benchmarks/results/readme_commands.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from default_run import AVX2_ENV, ROOT, cpu_kind

VAELAB = [sys.executable, "-m", "vaelab"]


def commands(run: str, tmp: str, paper: bool) -> list[tuple[str, list[str]]]:
    """(the command as README shows it, the argv run here)."""
    image = f"{tmp}/digit.png"
    rows = [
        ("vaelab train", ["train", "--no-progress", "--out", run]),
        ("vaelab sample RUN", ["sample", run]),
        ("vaelab sample RUN --count 100 --format files --out digits/",
         ["sample", run, "--count", "100", "--format", "files", "--out", f"{tmp}/digits/"]),
        ("vaelab reconstruct RUN", ["reconstruct", run]),
        ("vaelab latent RUN", ["latent", run]),
        ("vaelab latent RUN --method tsne", ["latent", run, "--method", "tsne"]),
        ("vaelab manifold RUN", ["manifold", run]),
        ("vaelab interpolate RUN --from 3 --to 4 --gif",
         ["interpolate", run, "--from", "3", "--to", "4", "--gif"]),
        ("vaelab traverse RUN", ["traverse", run]),
        ("vaelab curves RUN", ["curves", run]),
        ("vaelab classifier train", ["classifier", "train"]),
        ("vaelab evaluate RUN", ["evaluate", run]),
        ("vaelab report RUN", ["report", run]),
        ("vaelab score RUN image.png", ["score", run, image]),
        ("vaelab score RUN image.png --k 100 (first call)", ["score", run, image, "--k", "100"]),
        ("vaelab score RUN image.png --k 100 (threshold cached)",
         ["score", run, image, "--k", "100"]),
        ("vaelab info", ["info"]),
    ]
    if paper:
        rows.append(("vaelab evaluate RUN --k 5000", ["evaluate", run, "--k", "5000"]))
    return rows


def write_digit(path: str) -> None:
    from PIL import Image

    from vaelab.data.datasets import load_split

    images, _ = load_split("mnist", "test")
    Image.fromarray(images[0, 0].numpy()).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avx2", action="store_true", help="limit to AVX2, fp32")
    parser.add_argument("--paper", action="store_true", help="also time evaluate --k 5000")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/readme_commands.json")
    args = parser.parse_args(argv)
    if args.avx2 and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":  # this process too
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]],
                  {**os.environ, **AVX2_ENV})
    cpu = cpu_kind()
    print(f"CPU: {cpu}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_digit(f"{tmp}/digit.png")
        env = {**os.environ, "VAELAB_CACHE_DIR": f"{tmp}/cache"}  # the classifier from scratch
        for shown, argv_ in commands(f"{tmp}/run", tmp, args.paper):
            started = time.perf_counter()
            done = subprocess.run([*VAELAB, *argv_], cwd=tmp, env=env, capture_output=True,
                                  text=True)
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"{shown} failed:\n{done.stderr[-2000:]}")
            print(f"{seconds:8.1f} s  {shown}", flush=True)
            rows.append({"command": shown, "seconds": round(seconds, 1)})
    print(f"\n| command ({cpu}) | seconds |\n|---|---:|")
    for row in rows:
        print(f"| `{row['command']}` | {row['seconds']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
