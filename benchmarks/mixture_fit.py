"""How the `gmm` sampler's fit was chosen: components, training codes and EM iterations.

    python benchmarks/mixture_fit.py RUN_DIR        # RUN_DIR: a default `vaelab train` run

Fits the mixture to the run's training codes in each setting below (scikit-learn's EM from
a k-means start, as the sampler does), then draws 10,000 codes at the sampler's default
temperature, decodes them and scores them as `vaelab evaluate` does: FID against the
10,000 test images and the legible fraction, in vaelab's classifier features. Prints a
table; writes JSON (default benchmarks/results/mixture_fit.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from default_run import ROOT, cpu_kind, report

SAMPLES = 10_000
CONVERGED = 200  # the iteration cap before: EM then stops at its tolerance, in about 15
SETTINGS = [  # (components, training codes, EM iterations, seed)
    (50, 20_000, CONVERGED, 0),  # the sampler before this choice
    (50, 55_000, CONVERGED, 0),
    (100, 20_000, CONVERGED, 0),
    (100, 55_000, CONVERGED, 0),
    (100, 55_000, 1, 0),
    (100, 55_000, 5, 0),  # the sampler's setting, over three seeds
    (100, 55_000, 5, 1),
    (100, 55_000, 5, 2),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained run directory")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/mixture_fit.json")
    args = parser.parse_args(argv)

    import torch

    from vaelab.data.datasets import load_dataset, stored_splits, to_float
    from vaelab.evaluation.classifier import features_and_probs, load_classifier
    from vaelab.evaluation.evaluate import legible_fraction
    from vaelab.evaluation.fid import frechet_distance
    from vaelab.runs.rundir import load_run
    from vaelab.samplers import GMM_TEMPERATURE, fit_mixture, training_codes

    torch.set_grad_enabled(False)
    model, cfg = load_run(args.run)
    model.eval()
    data = load_dataset(cfg.data)
    classifier, _ = load_classifier(cfg.data)
    test = stored_splits(cfg.data)[1].images  # as stored, not binarized: what evaluate uses
    f_test, _ = features_and_probs(classifier, to_float(test))
    cpu = cpu_kind()
    print(f"CPU: {cpu}", flush=True)
    rows, measured = [], []
    for components, count, iterations, seed in SETTINGS:
        codes = training_codes(data, count)
        started = time.perf_counter()
        mixture = fit_mixture(model, codes, seed, components, iterations)
        seconds = time.perf_counter() - started  # encoding the codes included
        z = mixture.sample(SAMPLES, GMM_TEMPERATURE, torch.Generator().manual_seed(0))
        images = torch.cat([model.images(chunk) for chunk in z.split(1000)])
        features, probs = features_and_probs(classifier, images)
        result = {"components": components, "codes": len(codes), "iterations": iterations,
                  "seed": seed, "fit_seconds": round(seconds, 1),
                  "fid": frechet_distance(features, f_test),
                  "legible": legible_fraction(probs)}
        print(result, flush=True)
        measured.append(result)
        rows.append((components, f"{len(codes):,}", "converged" if iterations == CONVERGED
                     else iterations, seed, f"{seconds:.1f}", f"{result['fid']:.2f}",
                     f"{result['legible']:.3f}"))
    report(["components", "codes", "EM iterations", "seed", f"fit s ({cpu})",
            f"FID (T={GMM_TEMPERATURE})", "legible"], rows,
           {"cpu": cpu, "run": args.run.name, "settings": measured}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
