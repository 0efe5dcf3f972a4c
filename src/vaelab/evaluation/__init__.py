"""Evaluation to paper standard: ELBO terms and importance-sampled NLL in nats, FID and the
classifier behind it, latent quality, comparisons between runs, and the anomaly score.
Import the modules themselves (`vaelab.evaluation.evaluate`, ...): scikit-learn and SciPy
load only when they are used."""
