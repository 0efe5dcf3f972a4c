"""Train and evaluate the reference presets; print a Markdown table and write JSON.

    python benchmarks/literature.py                     # all presets, K=5000
    python benchmarks/literature.py --presets mlp-classic --k 1000

Each row is `vaelab train --config configs/<preset>.toml` followed by `vaelab evaluate`,
run as a user runs them; training time is the wall time of the train command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from commands import VAELAB, run

from vaelab.evaluation.evaluate import data_mode

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {  # name: (config file or None for the defaults, evaluation images, paper NLL, K)
    "mlp-classic": ("configs/mlp-classic.toml", None, None, None),
    "burda-vae": ("configs/burda-vae.toml", None, 86.76, None),
    "default": (None, None, None, None),  # `vaelab train` with no flags
    # the hierarchical VAE (LVAE's Ladder VAE: 81.74)
    "hvae": ("configs/hvae.toml", None, 81.74, None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--k", type=int, default=5000,
                        help="importance samples, where a preset names none (default 5000)")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"),
                        help="decoder precision during importance sampling (default bf16)")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench"),
                        help="where the runs go (default runs/bench)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/literature.json")
    args = parser.parse_args(argv)
    rows = []
    for name in args.presets:
        config, images, paper, k = PRESETS[name]
        run_dir = args.runs / name
        train = [*VAELAB, "train", "--no-progress", "--out", str(run_dir)]
        train += ["--config", str(ROOT / config)] if config else []
        if (run_dir / "checkpoints").exists():
            print(f"{run_dir} exists: evaluating it again without retraining", flush=True)
            train_seconds = json.loads((run_dir / "summary.json").read_text()).get(
                "train_seconds_this_session")
        else:
            train_seconds = run(train)
        evaluate = [*VAELAB, "evaluate", str(run_dir), "--k", str(k or args.k),
                    "--precision", args.precision]
        evaluate += ["--images", str(images)] if images else []
        run(evaluate)
        results = json.loads((run_dir / "eval.json").read_text())
        rows.append({"preset": name, "train_command": " ".join(["vaelab", *train[3:]]),
                     "eval_command": " ".join(["vaelab", *evaluate[3:]]),
                     "train_seconds": round(train_seconds, 1), "paper_nll": paper, **results})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    print(f"wrote {args.out}")
    return 0


def table(rows: list[dict]) -> str:
    lines = ["| preset | data | test NLL (K) | -ELBO | FID (floor) | active units | "
             "train time | paper NLL |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        images = f", {r['nll_images']:,} images" if r.get("nll_images", 10_000) < 10_000 else ""
        lines.append(
            f"| {r['preset']} | {data_mode(r)} | {r['nll']:.2f} ± {r['nll_stderr']:.2f} "
            f"(K={r['nll_k']}{images}) | {r['test_neg_elbo']:.2f} | {r['fid']:.2f} "
            f"({r['fid_train_vs_test']:.2f}) | {r['active_units']}/{r['latent_dim']} | "
            f"{r['train_seconds'] / 60:.1f} min | {r['paper_nll'] or '-'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
