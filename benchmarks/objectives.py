"""Objectives and priors side by side on one network: train each variant, evaluate its test
NLL, print a Markdown table and write JSON.

    python benchmarks/objectives.py                  # 20 epochs each, K=1000 on 2,000 images
    python benchmarks/objectives.py --epochs 5 --images 500

The network is the Burda et al. (2016) one-layer MLP (200-200, 50 latent units,
configs/burda-vae.toml) on dynamically binarized MNIST; only the objective or the prior
changes between rows. Each row is `vaelab train` then `vaelab evaluate --no-fid`, run as a
user runs them; training time is the train command's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from commands import VAELAB, run

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {  # name: extra train flags
    "elbo": [],
    "iwae-k5": ["--objective", "iwae", "--k", "5"],
    "iwae-dreg-k5": ["--objective", "iwae-dreg", "--k", "5"],
    "mog-prior": ["--prior", "mog", "--prior-components", "10"],
    "vamp-prior": ["--prior", "vamp", "--prior-components", "100"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--k", type=int, default=1000, help="importance samples (default 1000)")
    parser.add_argument("--images", type=int, default=2000, help="test images for the NLL")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's)")
    parser.add_argument("--runs", type=Path, default=Path("runs/objectives"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/objectives.json")
    args = parser.parse_args(argv)
    rows = []
    for name in args.variants:
        run_dir = args.runs / name
        train = [*VAELAB, "train", "--no-progress", "--config",
                 str(ROOT / "configs/burda-vae.toml"), "--epochs", str(args.epochs),
                 "--threads", str(args.threads), "--out", str(run_dir), *VARIANTS[name]]
        seconds = run(train)
        run([*VAELAB, "evaluate", str(run_dir), "--k", str(args.k), "--images",
             str(args.images), "--no-fid"])
        results = json.loads((run_dir / "eval.json").read_text())
        rows.append({"variant": name, "train_flags": " ".join(VARIANTS[name]),
                     "train_seconds": round(seconds, 1), **results})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows, args.epochs))
    print(f"wrote {args.out}")
    return 0


def table(rows: list[dict], epochs: int) -> str:
    lines = [f"| variant ({epochs} epochs) | test NLL (K) | test -ELBO | KL | active units | "
             "train time |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['nll']:.2f} ± {r['nll_stderr']:.2f} "
                     f"(K={r['nll_k']}, {r['nll_images']:,} images) | {r['test_neg_elbo']:.2f} "
                     f"| {r['test_kl']:.2f} | {r['active_units']}/{r['latent_dim']} | "
                     f"{r['train_seconds'] / 60:.1f} min |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
