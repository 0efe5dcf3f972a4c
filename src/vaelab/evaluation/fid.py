"""Frechet distance between feature distributions (Heusel et al. 2017, eq. 6) and the
classifier score, an Inception-Score analogue (Salimans et al. 2016)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch


def _trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """Tr((A B)^(1/2)) for symmetric PSD A, B, as the sum of sqrt(eig(A^(1/2) B A^(1/2))).

    The symmetric form has real, non-negative eigenvalues, so it stays exact and stable
    where features are degenerate and A B is singular (a general sqrtm is not)."""
    values, vectors = scipy.linalg.eigh(a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = scipy.linalg.eigvalsh(root_a @ b @ root_a)
    return float(np.sqrt(np.clip(inner, 0, None)).sum())


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) for features (N, F), (M, F)."""
    a, b = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    distance = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
    return float(max(distance - 2 * _trace_sqrt_product(cov_a, cov_b), 0.0))


def classifier_score(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))): high when samples are confident and classes varied."""
    probs = probs.double().clamp(min=1e-12)
    marginal = probs.mean(0, keepdim=True)
    return float(torch.exp((probs * (probs.log() - marginal.log())).sum(1).mean()))
