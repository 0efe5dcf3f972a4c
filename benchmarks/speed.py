"""Training speed: images/s, time to quality and peak memory, against a plain-PyTorch baseline.

    python benchmarks/speed.py            # every row (about 13 minutes on 2 CPU cores)
    python benchmarks/speed.py --quick    # fewer epochs: a smoke test of the benchmark
    python benchmarks/speed.py --rows keras-bf16 default-bf16
    python benchmarks/speed.py --avx2 --rows mlp-preset-fp32 default-fp32   # as on AVX2

--avx2 runs this process and every child with ATEN_CPU_CAPABILITY=avx2,
ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2: a CPU without AVX-512, whose bf16
is emulated (about 100x slower than fp32). The CPU column names what each row ran on.

Every vaelab row is `python -m vaelab train ...` run as a user runs it, in its own process,
so its peak RSS is its own. The "paired" rows run in one process: the pytorch/examples VAE
with its DataLoader (benchmarks/example_baseline.py) between two vaelab runs of the same
recipe (batch 128, Adam 1e-3, 10 epochs), so the speed ratio is measured minutes apart on
the same machine state. images/s is the median over the epochs after the first. "% peak"
is the model's training FLOPs per image times images/s, over the matrix-product peak
measured before every row (2048^3 products; the best seen counts, as this
machine's speed drifts). Prints a Markdown table and
writes JSON (default benchmarks/results/speed.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MLP_TARGET = 105.6  # nats: the pytorch/examples test loss after its 10 epochs, 105.56
DEFAULT_TARGET = 99.0  # nats: the quality bar of the default run (tests/evaluation/test_quality.py)
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
EXAMPLE_RECIPE = ["--batch-size", "128", "--lr", "1e-3", "--schedule", "constant",
                  "--epochs", "10", "--lr-warmup-epochs", "0", "--adam-beta2", "0.999"]
# name: (vaelab train arguments, epochs with --quick, quality target in nats or None)
ROWS = {
    "mlp-preset": (["--config", "configs/mlp-classic.toml"], 6, MLP_TARGET),
    "mlp-preset-fp32": (["--config", "configs/mlp-classic.toml", "--precision", "fp32"], 6,
                        MLP_TARGET),
    "keras-fp32": (["--config", "configs/keras-conv.toml", "--epochs", "3",
                    "--precision", "fp32"], 2, None),
    "keras-bf16": (["--config", "configs/keras-conv.toml", "--epochs", "3",
                    "--precision", "bf16"], 2, None),
    "default": ([], 2, DEFAULT_TARGET),
    "default-fp32": (["--precision", "fp32"], 2, DEFAULT_TARGET),
    "default-bf16": (["--precision", "bf16"], 2, DEFAULT_TARGET),
}


def matmul_peak(dtype: torch.dtype, size: int = 2048, trials: int = 5, reps: int = 5) -> float:
    """Best TFLOP/s of square matrix products in `dtype`."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best = 0.0
    for _ in range(trials):
        started = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * size ** 3 * reps / (time.perf_counter() - started) / 1e12)
    return best


def training_flops_per_image(args: list[str]) -> float:
    """Matrix-product and convolution FLOPs of one training step (forward and backward),
    per image, for the model that `vaelab train args` builds."""
    from torch.utils.flop_counter import FlopCounterMode

    from vaelab.cli.training import TRAIN_FLAGS
    from vaelab.config import Config, load_toml
    from vaelab.models.vae import build_model
    from vaelab.training.objectives import negative_elbo

    values = load_toml(ROOT / args[args.index("--config") + 1]) if "--config" in args else {}
    cfg = Config.from_dict(values)
    flags = {flag: key for flag, key, _, _ in TRAIN_FLAGS}
    overrides = {flags[a]: args[i + 1] for i, a in enumerate(args) if a in flags
                 and flags[a].startswith("model.")}
    cfg = cfg.replace(overrides)
    model, batch = build_model(cfg.model), 32
    with FlopCounterMode(display=False) as counter:
        negative_elbo(model, torch.rand(batch, 1, 28, 28))["loss"].backward()
    return counter.get_total_flops() / batch


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: it starts afresh at exec, unlike the
    rusage of a child, which counts the forking parent's memory too)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(arguments: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `python benchmarks/speed.py --measure ARGUMENTS` (module or script arguments);
    return its wall seconds, its peak RSS in MB and its stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "peak_rss"
        command = [sys.executable, __file__, "--measure", str(report), *arguments]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        return wall, float(report.read_text()), done.stdout


def measure(report: Path, arguments: list[str]) -> int:
    """Run `-m MODULE ARGS` or `SCRIPT ARGS` in this process, then write its peak RSS."""
    import runpy

    try:
        if arguments[0] == "-m":
            sys.argv = [arguments[1], *arguments[2:]]
            runpy.run_module(arguments[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = arguments
            runpy.run_path(arguments[0], run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    finally:
        report.write_text(f"{peak_rss_mb()}\n")
    return 0


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def summarize(records: list[dict], n_images: int) -> dict:
    speeds = [r["images_per_second"] for r in records]
    steady = speeds[1:] or speeds
    return {"images_per_second": statistics.median(steady),
            "epoch_seconds": statistics.median([r["epoch_seconds"] for r in records][1:]
                                               or [records[0]["epoch_seconds"]]),
            "loop_seconds": sum(r["epoch_seconds"] for r in records),
            "epochs": len(records), "images": n_images}


def vaelab_row(name: str, args: list[str], quick_epochs: int, target, quick: bool,
               env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / name
        command = ["-m", "vaelab", "train", "--no-progress", "--out", str(run), *args,
                   *(["--epochs", str(quick_epochs)] if quick else [])]
        wall, rss, out = run_child(command, env)
        records = read_metrics(run)
        summary = json.loads((run / "summary.json").read_text())
        config = json.loads((run / "config.json").read_text())
    precision = "bf16" if ", bf16" in out.splitlines()[0] else "fp32"
    row = {"name": name, "command": "vaelab train " + " ".join(args), "precision": precision,
           "batch_size": config["train"]["batch_size"], "wall_seconds": wall,
           "peak_rss_mb": rss, "test_loss": summary["test_loss"], "target": target,
           **summarize(records, 0)}
    row["time_to_target"] = (row["loop_seconds"] if target is not None
                             and row["test_loss"] <= target else None)
    row["flops_per_image"] = training_flops_per_image(args)
    return row


def paired_worker(epochs: int) -> list[dict]:
    """In one process: vaelab bf16 (eager, compiled), the example's DataLoader baseline,
    vaelab fp32."""
    sys.path.insert(0, str(Path(__file__).parent))
    import example_baseline

    from vaelab.config import Config, load_toml
    from vaelab.data.datasets import load_split
    from vaelab.training.loop import train

    train_images, train_labels = load_split("mnist", "train")
    test_images, test_labels = load_split("mnist", "test")
    base = Config.from_dict(load_toml(ROOT / "configs/mlp-classic.toml")).replace({
        "train.batch_size": 128, "train.lr": 1e-3, "train.schedule": "constant",
        "train.epochs": epochs, "train.lr_warmup_epochs": 0.0, "train.adam_beta2": 0.999})
    rows = []

    def vaelab(precision: str, compile: bool = False) -> None:
        cfg = base.replace({"train.precision": precision, "train.compile": compile})
        with tempfile.TemporaryDirectory() as tmp:
            run = train(cfg, out=Path(tmp) / "run", progress_bar=False, log=lambda text: None)
            records = read_metrics(run)
            summary = json.loads((run / "summary.json").read_text())
        name = f"paired-vaelab-{precision}{'-compile' if compile else ''}"
        rows.append({"name": name, "precision": precision, "compile": compile,
                     "test_loss": summary["test_loss"], **summarize(records, 60_000)})

    vaelab("bf16")
    vaelab("bf16", compile=True)
    with open(os.devnull, "w") as devnull:  # the example's progress lines, written unread
        result = example_baseline.run(train_images[:, 0], train_labels, test_images[:, 0],
                                      test_labels, epochs,
                                      log=lambda text: print(text, file=devnull))
    records = [{"epoch_seconds": s, "images_per_second": result["images"] / s}
               for s in result["epoch_seconds"]]
    rows.append({"name": "paired-example", "precision": "fp32",
                 "test_loss": result["test_losses"][-1], **summarize(records, result["images"])})
    vaelab("fp32")
    return rows


def paired_rows(quick: bool, env: dict[str, str]) -> list[dict]:
    epochs = 2 if quick else 10
    wall, rss, out = run_child([__file__, "--paired-worker", str(epochs)], env)
    rows = json.loads(out.splitlines()[-1])
    flops = training_flops_per_image(["--config", "configs/mlp-classic.toml"])
    recipe = " ".join(EXAMPLE_RECIPE[:-6] + ["--epochs", str(epochs)])
    for row in rows:
        row.update(peak_rss_mb=rss, rss_shared=True, flops_per_image=flops, batch_size=128,
                   wall_seconds=None, target=MLP_TARGET,
                   command=("pytorch/examples vae/main.py (DataLoader)"
                            if row["name"] == "paired-example" else
                            f"vaelab train --config configs/mlp-classic.toml {recipe} "
                            f"--precision {row['precision']}"
                            + (" --compile" if row.get("compile") else "")))
        row["time_to_target"] = (row["loop_seconds"] if row["test_loss"] <= MLP_TARGET
                                 else None)
    return rows


def table(rows: list[dict], peaks: dict[str, float]) -> str:
    baseline = next((r for r in rows if r["name"] == "paired-example"), None)
    lines = ["| row | CPU | precision | batch | img/s | epoch s | loop s | time to target | "
             "test nats | wall s | peak RSS MB | x example | % peak |",
             "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        tflops = r["flops_per_image"] * r["images_per_second"] / 1e12
        r["achieved_tflops"] = tflops
        r["percent_of_peak"] = 100 * tflops / peaks[r["precision"]]
        same_model = baseline and r["flops_per_image"] == baseline["flops_per_image"]
        r["x_example"] = (r["images_per_second"] / baseline["images_per_second"]
                          if same_model else None)
        to_target = ("-" if r["target"] is None else
                     f"{r['time_to_target']:.1f} s to <= {r['target']}"
                     if r["time_to_target"] is not None else f"not reached ({r['target']})")
        lines.append(
            f"| {r['name']} | {r['cpu']} | {r['precision']} | {r['batch_size']} | "
            f"{r['images_per_second']:,.0f} | {r['epoch_seconds']:.2f} | "
            f"{r['loop_seconds']:.1f} | {to_target} | {r['test_loss']:.2f} | "
            + (f"{r['wall_seconds']:.0f}" if r["wall_seconds"] else "-") + " | "
            + f"{r['peak_rss_mb']:.0f}{'*' if r.get('rss_shared') else ''} | "
            + (f"{r['x_example']:.1f}" if r["x_example"] else "-")
            + f" | {r['percent_of_peak']:.0f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", choices=["paired", *ROWS],
                        default=["paired", *ROWS], help="which rows to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="a few epochs per row")
    parser.add_argument("--avx2", action="store_true",
                        help="run as on a CPU with AVX2 only (no AVX-512, bf16 emulated)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/speed.json")
    parser.add_argument("--paired-worker", type=int, metavar="EPOCHS", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:  # internal: run a command here and report its memory
        return measure(Path(argv[1]), argv[2:])
    args = parser.parse_args(argv)
    if args.avx2 and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":  # this process too
        os.execve(sys.executable, [sys.executable, __file__, *argv], {**os.environ, **AVX2_ENV})
    if args.paired_worker:
        from vaelab.training.speed import tune_allocator

        tune_allocator()
        print(json.dumps(paired_worker(args.paired_worker)))
        return 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    peaks = {"fp32": 0.0, "bf16": 0.0}

    from vaelab.training.speed import bf16_native

    native_bf16 = bf16_native(torch.device("cpu"))

    def measure_peaks() -> None:  # before every row: the best seen is the machine's limit
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            if precision == "bf16" and not native_bf16:  # emulated: minutes per product
                peaks[precision] = max(peaks[precision], matmul_peak(dtype, 256, 1, 1))
                continue
            peaks[precision] = max(peaks[precision], matmul_peak(dtype))

    measure_peaks()
    cpu = torch.backends.cpu.get_cpu_capability() + (" + bf16" if native_bf16 else "")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
               f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
    print(machine, flush=True)
    rows = []
    if "paired" in args.rows:
        print("running the paired rows (example baseline and vaelab, one process)", flush=True)
        rows += paired_rows(args.quick, env)
    for name in (n for n in ROWS if n in args.rows):
        measure_peaks()
        print(f"running {name}", flush=True)
        rows.append(vaelab_row(name, *ROWS[name], args.quick, env))
    for row in rows:
        row["cpu"] = cpu
    measure_peaks()
    print(f"matmul peak (best seen) fp32 {peaks['fp32']:.2f} TFLOP/s, "
          f"bf16 {peaks['bf16']:.2f} TFLOP/s", flush=True)
    text = table(rows, peaks)
    print(text)
    print("* one process ran all three paired rows: its peak RSS is theirs together")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "matmul_peak_tflops": peaks,
                                    "quick": args.quick, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
