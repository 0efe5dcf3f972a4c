"""The first experience: `vaelab train` with no flags, then its samples and likelihood.

    python benchmarks/default_run.py            # 3 runs on this CPU as it is
    python benchmarks/default_run.py --avx2     # the same, limited to AVX2 and fp32

--avx2 runs every child process with ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2 and
MKL_ENABLE_INSTRUCTIONS=AVX2, as on a laptop without AVX-512 (bf16 is then emulated, so
`--precision auto` picks fp32). Measures, against the targets of the default run:
  1. the wall time of `vaelab train` (start to exit, data loading and the final test
     evaluation included), median of --runs runs;
  2. of the 1,000 samples `vaelab sample --count 1000` draws (default sampler, seed 0), the
     fraction vaelab's classifier assigns to one class with p > 0.9 (beside it, the same for
     the real test images), the smallest class share, and FID on 10,000 samples per sampler;
  3. the test NLL with K=1000 on all 10,000 test images, and that evaluation's time.
Prints a table; writes JSON (default benchmarks/results/default_run.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
TARGETS = {"wall_seconds": 120.0, "legible": 0.90, "min_class_share": 0.05, "fid": 30.0,
           "nll": 89.0, "nll_seconds": 300.0}


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def cpu_kind() -> str:
    import torch

    from vaelab.training.speed import bf16_native

    native = bf16_native(torch.device("cpu"))
    return (f"{torch.backends.cpu.get_cpu_capability()}, "
            f"{'native' if native else 'no native'} bf16, {torch.get_num_threads()} threads")


def default_samples(run: Path, count: int = 1000) -> dict:
    """What `vaelab sample RUN --count 1000` draws, classified by vaelab's classifier."""
    import torch

    import vaelab
    from vaelab.data.datasets import load_split, to_float
    from vaelab.evaluation.classifier import features_and_probs, load_classifier
    from vaelab.evaluation.evaluate import legible_fraction

    model = vaelab.load(run)
    images = model.sample(count, generator=torch.Generator().manual_seed(0))
    classifier, _ = load_classifier("mnist")
    _, probs = features_and_probs(classifier, images)
    _, test_probs = features_and_probs(classifier, to_float(load_split("mnist", "test")[0]))
    shares = torch.bincount(probs.argmax(1), minlength=10).double() / count
    return {"sampler": model.default_sampler, "legible": legible_fraction(probs),
            "legible_test": legible_fraction(test_probs),
            "min_class_share": shares.min().item(), "class_shares": shares.tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avx2", action="store_true", help="limit children to AVX2, fp32")
    parser.add_argument("--runs", type=int, default=3, help="training runs (default: 3)")
    parser.add_argument("--k", type=int, default=1000, help="importance samples (default 1000)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/default_run.json")
    parser.add_argument("--keep", type=Path, help="copy the median run's directory here (for "
                        "README figures such as docs/samples.png)")
    args = parser.parse_args(argv)
    if args.avx2 and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":  # this process too
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]],
                  {**os.environ, **AVX2_ENV})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cpu = cpu_kind()
    print(f"CPU: {cpu}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        walls, runs = [], []
        for i in range(args.runs):
            run = Path(tmp) / f"default-{i}"
            seconds, out = timed([sys.executable, "-m", "vaelab", "train", "--no-progress",
                                  "--out", str(run)], env)
            summary = json.loads((run / "summary.json").read_text())
            print(f"run {i + 1}: {seconds:.1f} s wall, {summary['epochs']} epochs, test "
                  f"-ELBO {summary['test_loss']:.2f}", flush=True)
            walls.append(seconds)
            runs.append((seconds, run, summary))
        seconds, run, summary = sorted(runs, key=lambda r: r[0])[len(runs) // 2]  # median
        samples = default_samples(run)
        eval_seconds, _ = timed([sys.executable, "-m", "vaelab", "evaluate", str(run),
                                 "--k", str(args.k)], env)
        results = json.loads((run / "eval.json").read_text())
        if args.keep:
            shutil.copytree(run, args.keep, dirs_exist_ok=True)
    measured = {
        "cpu": cpu, "wall_seconds": statistics.median(walls), "walls": walls,
        "epochs": summary["epochs"], "test_neg_elbo": summary["test_loss"],
        "gmm_fit_seconds": summary.get("gmm_fit_seconds"), **samples,
        "fid": results.get("fid"), "fid_prior": results.get("fid_prior"),
        "legible_10k": results.get("legible"), "legible_prior": results.get("legible_prior"),
        "fid_floor": results.get("fid_train_vs_test"), "nll": results["nll"],
        "nll_stderr": results["nll_stderr"], "nll_k": results["nll_k"],
        "nll_images": results["nll_images"], "nll_seconds": results["nll_seconds"],
        "evaluate_seconds": eval_seconds}
    rows = [
        (f"vaelab train, wall (median of {len(walls)})", f"{measured['wall_seconds']:.1f} s",
         "<= 120 s", measured["wall_seconds"] <= TARGETS["wall_seconds"]),
        (f"legible samples (1,000, {samples['sampler']})", f"{samples['legible']:.3f} "
         f"(test images {samples['legible_test']:.3f})", ">= 0.90",
         samples["legible"] >= TARGETS["legible"]),
        ("smallest class share", f"{samples['min_class_share']:.3f}", ">= 0.05",
         samples["min_class_share"] >= TARGETS["min_class_share"]),
        (f"FID (10,000 samples, {samples['sampler']})", f"{measured['fid']:.2f} (prior "
         f"{measured['fid_prior']:.2f}, floor {measured['fid_floor']:.2f})", "<= 30",
         measured["fid"] <= TARGETS["fid"]),
        (f"test NLL (K={measured['nll_k']}, {measured['nll_images']:,} images)",
         f"{measured['nll']:.2f} ± {measured['nll_stderr']:.2f}", "<= 89",
         measured["nll"] <= TARGETS["nll"]),
        ("importance sampling time", f"{measured['nll_seconds']:.0f} s "
         f"(whole evaluate {eval_seconds:.0f} s)", "<= 300 s",
         measured["nll_seconds"] <= TARGETS["nll_seconds"]),
    ]
    report([f"measure ({cpu})", "value", "target", "met"],
           [(name, value, target, "yes" if met else "no") for name, value, target, met in rows],
           measured, args.out)
    return 0


def report(columns: list[str], rows: list[tuple], measured: dict, out: Path) -> None:
    """Print the rows as a Markdown table, and write the measurements to `out` as JSON."""
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(measured, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
