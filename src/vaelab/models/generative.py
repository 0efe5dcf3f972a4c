"""What every vaelab model shares (`LatentVariableModel`), whatever its layers:

- `encode(x, y)` -> posterior (mu, logvar) of the latent code, (N, latent_dim) each, in a
  space where the prior is N(0, I) for the standard-normal and hierarchical models;
- `image_shape`: (C, H, W) of the images it reads and makes, (1, 28, 28) for MNIST;
- `decode(z, y)` -> the likelihood's parameters (N, P, H, W): logits (Bernoulli), means
  (Gaussian), or a logistic mixture's; `images(z, y)` -> (N, C, H, W) in [0, 1];
- `sample(n, label=...)`, `reconstruct(x, y)`;
- for the objectives: `infer(x, y)` -> a list of per-image tensors (computed once per
  image), and `generate(features, noise, y)` -> {"out", "kl_units" (B, U), "log_ratio" (B,)},
  where log_ratio = log p(z) - log q(z | x) at the sampled z.

Conditional models take class labels `y`: (N,) integers, or (N, Y) rows of class weights
(one-hot, or a blend of two classes when interpolating between them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def one_hot(y: torch.Tensor | None, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Integer labels (N,) -> one-hot rows (N, Y); rows given already (N, Y) pass through."""
    if y is None:
        raise ValueError("this model is conditional: pass the class labels y")
    return F.one_hot(y, num_classes).to(dtype) if y.dim() == 1 else y.to(dtype)


class LatentVariableModel(nn.Module):
    """What every vaelab model shares: sampling, images and reconstructions, built on
    `encode`, `decode`, `infer` and `generate`, which each model defines."""

    latent_dim: int
    num_classes: int  # 0 for an unconditional model
    image_shape: tuple[int, int, int]  # (C, H, W)
    default_sampler = "prior"  # what `sample` draws codes with; a run's loader sets "gmm"
    code_samplers: dict = {}  # name -> (n, temperature, generator, y) -> codes; set by loaders

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None,
                y: torch.Tensor | None = None, k: int = 1,
                detach_posterior: bool = False) -> dict[str, torch.Tensor]:
        """One pass with the reparameterization trick, K samples per image (rows image-major:
        image 0's K samples first). `noise` (B * K, latent_dim) is the standard normal draw,
        drawn here when not given. The encoder runs once per image."""
        features = self.infer(x, y)
        if k > 1:
            features = [f.repeat_interleave(k, dim=0) for f in features]
            y = y.repeat_interleave(k, dim=0) if y is not None else None
        if noise is None:
            noise = torch.randn(len(x) * k, self.latent_dim, device=x.device)
        return self.generate(features, noise, y, detach_posterior)

    def images(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (N, D) -> mean images (N, C, H, W) in [0, 1]."""
        return self.likelihood.mean(self.decode(z, y))

    def prior_codes(self, n: int, temperature: float = 1.0,
                    generator: torch.Generator | None = None,
                    y: torch.Tensor | None = None) -> torch.Tensor:
        """n codes drawn from the prior (given the labels y, where it depends on them), their
        spread scaled by `temperature`."""
        device = next(self.parameters()).device
        return temperature * torch.randn(n, self.latent_dim, generator=generator,
                                         device=device)

    @torch.no_grad()
    def sample(self, n: int, temperature: float | None = None,
               generator: torch.Generator | None = None,
               label: int | torch.Tensor | None = None, sampler: str | None = None
               ) -> torch.Tensor:
        """Decoded mean images (n, C, H, W). A conditional model needs `label`: one class
        for all n, or (n,) labels. `sampler` draws the codes: "prior", "gmm" (a mixture fitted
        to training codes; models loaded from a run have it), or None for the model's default
        (`gmm` for a model loaded from a run, else the prior). `temperature` scales the
        sampler's spread; None takes the sampler's own default (1 for the prior)."""
        y = self.labels_for(n, label, next(self.parameters()).device)
        return self.images(self.draw_codes(n, temperature, generator, y, sampler), y)

    def draw_codes(self, n: int, temperature: float | None = None,
                   generator: torch.Generator | None = None, y: torch.Tensor | None = None,
                   sampler: str | None = None) -> torch.Tensor:
        """(n, latent_dim) codes from the named sampler (see `sample`)."""
        name = sampler or self.default_sampler
        if name == "prior":
            return self.prior_codes(n, 1.0 if temperature is None else temperature,
                                    generator, y)
        if name not in self.code_samplers:
            raise ValueError(f"this model has no {name!r} sampler: load it from a run "
                             f"directory (vaelab.load) or pass sampler='prior'")
        return self.code_samplers[name](n, temperature, generator, y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the posterior mean of each image: (N, C, H, W) -> (N, C, H, W) in [0, 1]."""
        mu, _ = self.encode(x, y)
        return self.images(mu, y)

    def labels_for(self, n: int, label: int | torch.Tensor | None,
                   device: torch.device) -> torch.Tensor | None:
        """(n,) labels for a conditional model, None for an unconditional one."""
        if not self.conditional:
            if label is not None:
                raise ValueError("this model is not conditional: it takes no label")
            return None
        if label is None:
            raise ValueError("this model is conditional: pass label=<class>")
        if isinstance(label, torch.Tensor) and label.dim() > 0:
            return label.to(device)
        return torch.full((n,), int(label), dtype=torch.long, device=device)


