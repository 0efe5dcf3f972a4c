"""What the benchmark scripts share: running a vaelab command as a user would."""

from __future__ import annotations

import subprocess
import sys
import time

VAELAB = [sys.executable, "-m", "vaelab"]


def run(command: list[str]) -> float:
    """Run a command (its output hidden), echoing it first; return its wall time in s."""
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started
