"""The explorer's latency as a person feels it: pointer moved to decoded image shown.

From a pointer event over the latent map to the decoded image in its canvas, measured in
the browser.

    python benchmarks/serve_latency.py runs/default            # a run of `vaelab train`
    python benchmarks/serve_latency.py                         # trains the default run first
    python benchmarks/serve_latency.py runs/default --screenshot docs/explorer.png

Starts `vaelab serve RUN --port 0` as its own process (as a user does), opens the page in
headless Chromium (Playwright), and moves the pointer to --moves random points of the map,
one at a time: each move waits for its image before the next, so no move waits behind
another. The page times each one with performance.now() from the pointer event's
timeStamp to the image put into its canvas (window.vaelab.timings.map), and reads the
server's own time from the answer's Server-Timing header. Prints a table; writes JSON
(default benchmarks/results/serve_latency.json). Target: p95 at most 30 ms on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from default_run import ROOT, cpu_kind, report

TARGET_P95_MS = 30.0
PARTS = ("dispatch", "queued", "request", "server", "draw")  # of each round trip, see explorer.js
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf")  # the page's (matplotlib's tab10)
WARMUP = 10  # moves not counted: the first requests open connections and warm the model


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_server(run: Path, threads: int) -> tuple[subprocess.Popen, str, float]:
    """`vaelab serve` in its own process: the process, its URL, and the seconds it took to
    print it (loading the run and encoding its test set)."""
    command = [sys.executable, "-m", "vaelab", "serve", str(run), "--port", "0",
               "--threads", str(threads)]
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for line in server.stdout:  # the one line that names the URL
        found = re.search(r"http://\S+", line)
        if found:
            return server, found.group(0), time.perf_counter() - started
    raise SystemExit(f"{' '.join(command)} ended without printing its URL")


def screenshot(page, out: Path) -> None:
    """The page after a drag on the map, a drawn 7 and an interpolation, as README shows it:
    PNG with a 256-colour palette (the scatter's 10,000 dots cost little that way)."""
    import numpy as np
    from PIL import Image

    def stroke(selector: str, points: list[tuple[float, float]]) -> None:
        box = page.locator(selector).bounding_box()
        at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
        page.mouse.move(*at[0])
        page.mouse.down()
        for x, y in at[1:]:
            page.mouse.move(x, y, steps=8)
        page.mouse.up()

    stroke("#map", [(0.3, 0.6), (0.45, 0.5), (0.58, 0.42)])
    stroke("#draw", [(0.25, 0.22), (0.72, 0.2), (0.62, 0.45), (0.45, 0.85)])
    page.click("#interpolate")
    page.wait_for_function("window.vaelab.last.path && window.vaelab.last.drawing")
    page.wait_for_timeout(500)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    image = Image.open(out).convert("RGB")
    # A palette of 256 colours by median cut, with the class colours weighted in so that
    # the legend keeps them exactly; dithered: 130 KB instead of 340 KB in RGB.
    classes = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in CLASS_COLOURS],
                       np.uint8)
    source = np.concatenate([np.asarray(image).reshape(-1, 3), np.repeat(classes, 4000, 0)])
    palette = Image.fromarray(source[None]).quantize(256, method=Image.Quantize.MEDIANCUT)
    image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(out, optimize=True)


def measure(url: str, moves: int, seed: int, shot: Path | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    rng = random.Random(seed)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(url)
        page.wait_for_function("window.vaelab && window.vaelab.ready", timeout=60_000)
        box = page.locator("#map").bounding_box()
        for i in range(WARMUP + moves):  # inside the plot: 52..468 across, 12..440 down
            x, y = rng.uniform(60, 460), rng.uniform(20, 430)
            page.mouse.move(box["x"] + x, box["y"] + y)
            page.wait_for_function(f"window.vaelab.timings.map.length > {i}")
        timings = page.evaluate("window.vaelab.timings")
        if shot is not None:
            screenshot(page, shot)
        browser.close()
    parts = timings["mapParts"][WARMUP:]
    return {"round_trip": timings["map"][WARMUP:],
            **{key: [part[key] for part in parts] for key in PARTS}}


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path,
                        help="run directory (default: train the default run in a temporary "
                        "folder first, about 2 minutes)")
    parser.add_argument("--moves", type=int, default=200, help="measured decodes (default 200)")
    parser.add_argument("--threads", type=int, default=1,
                        help="the server's torch threads (default: 1, as `vaelab serve`)")
    parser.add_argument("--seed", type=int, default=0, help="where the pointer goes")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="afterwards, save the page as README shows it (docs/explorer.png)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "serve_latency.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "default"
            subprocess.run([sys.executable, "-m", "vaelab", "train", "--out", str(run),
                            "--no-progress"], cwd=ROOT, check=True)
        server, url, startup = start_server(run, args.threads)
        try:
            got = measure(url, args.moves, args.seed, args.screenshot)
        finally:
            server.terminate()
            server.wait(30)
    trips = got["round_trip"]
    measured = {
        "run": str(run if args.run else "default run (trained here)"),
        "cpu": cpu_kind(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(), "server_threads": args.threads, "moves": len(trips),
        "p50_ms": percentile(trips, 0.5), "p95_ms": percentile(trips, 0.95), "max_ms": max(trips),
        "mean_ms": statistics.fmean(trips), "target_p95_ms": TARGET_P95_MS,
        "startup_seconds": startup,
        **{f"{key}_p50_ms": percentile(got[key], 0.5) for key in PARTS},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "round_trips_ms": trips,
    }
    rows = [("map decodes measured", len(trips)),
            ("round trip p50 (ms)", f"{measured['p50_ms']:.1f}"),
            ("round trip p95 (ms)", f"{measured['p95_ms']:.1f} (target <= {TARGET_P95_MS:g})"),
            ("round trip max (ms)", f"{measured['max_ms']:.1f}"),
            ("of which, p50 (ms): " + ", ".join(PARTS),
             " / ".join(f"{measured[f'{key}_p50_ms']:.1f}" for key in PARTS)),
            ("`vaelab serve` start to URL (s)", f"{startup:.1f}"),
            ("CPU", f"{measured['cpu_capability']}, {os.cpu_count()} cores, server on "
             f"{args.threads} thread(s)"),
            ("load average (1, 5, 15 min)", " ".join(f"{v:.2f}" for v in
                                                     measured["load_average"] or []))]
    report(["measure", "value"], rows, measured, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
