"""The fault-injection suite at full strength, with a summary table.

    python benchmarks/faults.py                    # 20 kill trials, 100,000 fuzz inputs in all
    python benchmarks/faults.py --trials 5 --fuzz 2000

Runs tests/training/test_faults.py, tests/test_fuzz.py and tests/cli/test_bad_input.py under
pytest with larger counts (the default test run uses 2 kill trials and 300 fuzz inputs),
collects what each fault class reported, and prints trials / passed / failed per class.
Writes JSON to benchmarks/results/faults.json.
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

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/training/test_faults.py", "tests/test_fuzz.py", "tests/cli/test_bad_input.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="SIGKILL trials (default 20)")
    parser.add_argument("--fuzz", type=int, default=50_000,
                        help="fuzz inputs per target, IDX and config (default 50,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/faults.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.jsonl"
        env = {**os.environ, "VAELAB_FAULT_TRIALS": str(args.trials),
               "VAELAB_FUZZ_EXAMPLES": str(args.fuzz), "VAELAB_FAULT_SEED": str(args.seed),
               "VAELAB_FAULT_REPORT": str(report)}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *TESTS], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        entries = [json.loads(line) for line in report.read_text().splitlines()] \
            if report.exists() else []
    rows: dict[str, dict] = {}
    for entry in entries:
        row = rows.setdefault(entry["fault"], {"trials": 0, "passed": 0, "details": {}})
        row["trials"] += entry["trials"]
        row["passed"] += entry["passed"]
        for key, value in entry.items():
            if key not in ("fault", "trials", "passed") and isinstance(value, int):
                row["details"][key] = row["details"].get(key, 0) + value
    lines = ["| fault class | trials | passed | failed | details |", "|---|---:|---:|---:|---|"]
    for fault, row in rows.items():
        details = ", ".join(f"{k} {v:,}" for k, v in row["details"].items())
        lines.append(f"| {fault} | {row['trials']:,} | {row['passed']:,} | "
                     f"{row['trials'] - row['passed']:,} | {details} |")
    print("\n".join(lines))
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    print(f"pytest: {summary} ({seconds / 60:.1f} min)")
    if done.returncode != 0:
        print(done.stdout[-4000:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"trials": args.trials, "fuzz": args.fuzz,
                                    "pytest": summary, "rows": rows}, indent=2) + "\n")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
