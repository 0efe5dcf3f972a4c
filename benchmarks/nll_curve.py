"""Test NLL against training time, from the estimates a run logs with `train.nll_every`.

    python benchmarks/nll_curve.py RUN_DIR [RUN_DIR ...] [--out curve.png]

Prints one Markdown table per run (epoch, cumulative training minutes, validation -ELBO,
test NLL with its K) and draws the curves, with the published numbers the README compares
against. Training time is the sum of the epochs' training seconds in metrics.jsonl: the
evaluation passes between epochs are not counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REFERENCES = [  # (nats, label): test NLL on dynamically binarized MNIST
    (86.76, "VAE, 1 layer (Burda et al. 2016)"),
    (82.90, "IWAE, 2 layers, k=50 (Burda et al. 2016)"),
    (81.74, "Ladder VAE (Sønderby et al. 2016)"),
    (78.01, "NVAE (Vahdat & Kautz 2020)"),
]


def curve(run: Path) -> list[dict]:
    """The epochs of a run that carry a test NLL estimate, with cumulative minutes."""
    rows, seconds = [], 0.0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        seconds += record["epoch_seconds"]
        if "test_nll" in record:
            rows.append({"epoch": record["epoch"], "minutes": seconds / 60,
                         "val_loss": record.get("val_loss"), "test_nll": record["test_nll"],
                         "k": record["test_nll_k"]})
    return rows


def table(run: Path, rows: list[dict]) -> str:
    lines = [f"### {run.name}", "", "| epoch | training minutes | val -ELBO | test NLL | K |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        val = f"{r['val_loss']:.2f}" if r["val_loss"] is not None else "-"
        lines.append(f"| {r['epoch']} | {r['minutes']:.1f} | {val} | {r['test_nll']:.2f} "
                     f"| {r['k']} |")
    return "\n".join(lines)


def plot(curves: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, rows in curves.items():
        ax.plot([r["minutes"] / 60 for r in rows], [r["test_nll"] for r in rows], "o-",
                ms=3, label=name)
    for (nats, label), style in zip(REFERENCES, ["--", "-.", ":", (0, (1, 3))]):
        ax.axhline(nats, color="0.45", lw=0.9, ls=style, label=f"{label}: {nats}")
    ax.set_xlabel("training time (hours)")
    ax.set_ylabel("test NLL (nats), importance-sampled")
    values = [r["test_nll"] for rows in curves.values() for r in rows]
    ax.set_ylim(77, max(min(100.0, max(values) + 1), min(values) + 5))  # early epochs clip
    ax.set_title("Test NLL against training time")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories")
    parser.add_argument("--out", type=Path, help="PNG of the curves (default: none)")
    args = parser.parse_args(argv)
    curves = {}
    for run in args.runs:
        if not (run / "metrics.jsonl").is_file():
            print(f"nll_curve: {run} has no metrics.jsonl", file=sys.stderr)
            return 2
        rows = curve(run)
        if not rows:
            print(f"nll_curve: {run} logged no test NLL (train with --nll-every N)",
                  file=sys.stderr)
            return 2
        curves[run.name] = rows
        print(table(run, rows) + "\n")
    if args.out:
        plot(curves, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
