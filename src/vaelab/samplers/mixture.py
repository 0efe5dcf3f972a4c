"""A Gaussian mixture fitted to the codes of training images after training: the post-hoc
sampler of Ghosh et al. (2020, "From variational to deterministic autoencoders", sec. 4),
as pythae's GaussianMixtureSampler does it.

The aggregate posterior q(z) = E_x q(z|x) of a trained VAE does not fill its prior: codes
drawn from N(0, I) in the gaps between the classes' regions decode to blobs. A mixture of
full-covariance Gaussians fitted to the posterior means of training images puts samples
where the decoder has learned to draw digits.

For a conditional model one mixture is fitted per class, to that class's codes, and a
sample of class y is drawn from class y's mixture. Fitting uses scikit-learn; the fitted
mixture is stored as tensors in a safetensors file, never pickled, and sampled with torch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import RunError

FORMAT = "vaelab-gmm-1"
REG_COVAR = 1e-4  # added to each covariance's diagonal: no component collapses onto a code
TOLERANCE = 1e-2  # EM stops when the mean log-likelihood gains less than this,
EM_ITERATIONS = 5  # or after this many iterations from the k-means start: on the default
#                    run's 55,000 codes (100 components of 32 units) five give the samples
#                    the FID of a converged fit (converged: 24.2; five: 24.0 to 26.5 over
#                    three seeds; one: 27.7) in two thirds of its time (benchmarks/
#                    mixture_fit.py)


@dataclass(frozen=True)
class GaussianMixture:
    """K full-covariance components over codes of D units; `classes[k]` is the class that
    component k belongs to (all 0 for an unconditional model)."""

    weights: torch.Tensor  # (K,), summing to 1 within each class
    means: torch.Tensor  # (K, D)
    scale_tril: torch.Tensor  # (K, D, D) lower Cholesky factors of the covariances
    classes: torch.Tensor  # (K,) int64
    fitted_to: str  # what the codes were, in words

    @property
    def num_components(self) -> int:
        return len(self.weights)

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def fit(cls, codes: torch.Tensor, labels: torch.Tensor | None, components: int,
            seed: int, fitted_to: str, iterations: int = EM_ITERATIONS) -> GaussianMixture:
        """Fit by EM (scikit-learn, k-means initialisation), at most `iterations` steps.
        `labels` (N,) fits one mixture per class with `components` components each; None
        fits one mixture to all codes."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture as SkMixture

        groups = [(0, codes)] if labels is None else \
            [(int(c), codes[labels == c]) for c in labels.unique(sorted=True)]
        parts = []
        for label, group in groups:
            k = max(1, min(components, len(group) // 2))  # a handful of codes: fewer parts
            mixture = SkMixture(k, covariance_type="full", reg_covar=REG_COVAR, tol=TOLERANCE,
                                random_state=seed, max_iter=iterations)
            with warnings.catch_warnings():  # stopping after `iterations` is deliberate
                warnings.simplefilter("ignore", ConvergenceWarning)
                mixture.fit(group.float().numpy())
            parts.append((label, mixture))
        return cls(
            weights=torch.cat([torch.from_numpy(m.weights_) for _, m in parts]).float(),
            means=torch.cat([torch.from_numpy(m.means_) for _, m in parts]).float(),
            scale_tril=torch.cat([torch.from_numpy(np.linalg.cholesky(m.covariances_))
                                  for _, m in parts]).float(),
            classes=torch.cat([torch.full((m.n_components,), label, dtype=torch.long)
                               for label, m in parts]),
            fitted_to=fitted_to)

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
               y: torch.Tensor | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
        """(n, D) codes: a component drawn by weight (within class y[i] when labels are given),
        then mean + temperature * L eps. Drawn on the generator's device, returned on `device`."""
        on = generator.device if generator is not None else torch.device("cpu")
        probs = self.weights.to(on).expand(n, -1)  # (n, K)
        if y is not None:
            probs = probs * (self.classes.to(on)[None, :] == y.to(on)[:, None])
        component = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (n,)
        eps = torch.randn(n, self.latent_dim, 1, generator=generator, device=on)  # (n, D, 1)
        scaled = (self.scale_tril.to(on)[component] @ eps).squeeze(2)  # (n, D)
        return (self.means.to(on)[component] + temperature * scaled).to(device)

    def save(self, path: Path) -> None:
        """Write the tensors to `path` (safetensors) through a temporary file and a rename."""
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"weights": self.weights, "means": self.means, "scale_tril": self.scale_tril,
                   "classes": self.classes}, str(tmp),
                  metadata={"format": FORMAT, "fitted_to": self.fitted_to})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> GaussianMixture:
        try:
            with safe_open(str(path), "pt") as f:
                metadata = f.metadata() or {}
                tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        except (OSError, SafetensorError, ValueError) as e:
            raise RunError(f"{path}: unreadable mixture sampler ({e})") from None
        if metadata.get("format") != FORMAT or set(tensors) != {"weights", "means",
                                                                "scale_tril", "classes"}:
            raise RunError(f"{path}: not a vaelab mixture sampler ({FORMAT})")
        return cls(tensors["weights"], tensors["means"], tensors["scale_tril"],
                   tensors["classes"], metadata.get("fitted_to", ""))
