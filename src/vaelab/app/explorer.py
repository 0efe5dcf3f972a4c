"""What the explorer page shows, computed from a trained run; no HTTP here (see server.py).

At start the test set's latent means are encoded once, as `vaelab latent` does (the same
images, the same PCA plane), and the latent dimensions are ranked by their mean KL, as
`vaelab traverse` ranks them. After that every request is one small batched pass through
the model in eval mode:

- the latent map: for 2-D codes the plane is the code itself; for codes of D > 2 units it is
  the plane of the first two principal components, so the map point (u, v) decodes as the
  code  pca_mean + u * pc1 + v * pc2  (and a code z is drawn at ((z - pca_mean) . pc1,
  (z - pca_mean) . pc2)); for 1-D codes the map is z[0] across and the class down, as in
  `vaelab latent`, and v does not change the code;
- images go out as uint8 (N, H, W, C) arrays, channels last, as a canvas takes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.datasets import DATASETS, PIXEL_LEVELS, Split, class_names, load_test, to_float
from ..figures.run_figures import (
    LATENT_POINTS,
    latent_indices,
    pca_axis_names,
    pca_plane,
    pick_test_index,
    pick_test_pair,
)
from ..models import latents as explore
from ..models.generative import LatentVariableModel
from ..runs.rundir import load_run

SLIDERS = 10  # dimensions with sliders: as many as `vaelab traverse --top` shows by default
SLIDER_LIMIT = 3.0  # sliders span -3..3 (traverse's --limit), widened to the codes' range
MAX_BATCH = 256  # codes in one decode request
MAX_STEPS = 100  # images on one interpolation path
JITTER = 0.3  # 1-D codes: each class's row is spread over +-0.3, as in `vaelab latent`


@dataclass(frozen=True)
class LatentMap:
    """The test set's codes on the map: `points` (N, 2) and `labels` (N,) of the test images
    `indices`; the plane (mean (D,), axes (2, D)) that maps codes to points and back."""

    points: np.ndarray
    labels: np.ndarray
    indices: list[int]
    mean: np.ndarray
    axes: np.ndarray
    axis_names: tuple[str, str]


class Explorer:
    """A trained model, its test set and latent map, and the answers the page asks for.

    Codes are (N, D) float tensors; labels of a conditional model are (N,) class numbers
    or (N, C) rows of class weights (a blend, on a path between two classes); an
    unconditional model takes none."""

    def __init__(self, model: LatentVariableModel, cfg: Config, test: Split,
                 classes: Sequence[str], name: str = "", seed: int = 0):
        self.model, self.cfg, self.test = model.eval(), cfg, test
        self.classes, self.name = tuple(classes), name
        self.device = next(model.parameters()).device
        self.map = self._latent_map(seed)  # also keeps the codes of its points: _codes
        codes = torch.from_numpy(self._codes)
        self.kl = explore.kl_per_dimension(codes, torch.from_numpy(self._logvars))  # (D,)
        self.slider_dims = self.kl.argsort(descending=True)[:SLIDERS].tolist()  # traverse's
        labels = torch.from_numpy(self.map.labels)
        self.class_means = {c: explore.class_means(codes, labels, c) for c in
                            range(len(self.classes)) if (labels == c).any()}

    @classmethod
    def from_run(cls, run: str | Path, checkpoint: str = "best", device: str = "cpu",
                 data_dir: str | Path | None = None) -> Explorer:
        """Load a run without ever writing to it (a `gmm` sampler fitted on first use stays
        in memory) and encode its test set."""
        model, cfg = load_run(run, checkpoint, device, data_dir, read_only=True)
        test = load_test(cfg.data, data_dir)
        known = cfg.data.classes or cfg.data.dataset in DATASETS
        return cls(model, cfg, test, class_names(cfg.data) if known else (), Path(run).name)

    # --- the map ---------------------------------------------------------------------------

    def _latent_map(self, seed: int) -> LatentMap:
        index = latent_indices(len(self.test), LATENT_POINTS, seed)  # as `vaelab latent`
        shown = Split(self.test.images[index], self.test.labels[index])
        mu, logvar = explore.encode_split(self.model, shown)  # (N, D) each
        self._codes, self._logvars = mu.numpy(), logvar.numpy()
        labels = shown.labels.cpu().numpy()
        d = self.model.latent_dim
        if d >= 3:
            mean, axes, share = pca_plane(self._codes, seed)
            names = pca_axis_names(share)
        else:  # the code is the plane (1-D: z[0] across, the class's row down)
            mean, axes = np.zeros(d), np.eye(2, d)
            names = ("z[0]", "z[1]" if d == 2 else "class")
        points = (self._codes - mean) @ axes.T  # (N, 2)
        if d == 1:
            jitter = np.random.default_rng(seed).uniform(-JITTER, JITTER, len(labels))
            points[:, 1] = labels + jitter
        return LatentMap(points.astype(np.float32), labels, index, mean.astype(np.float32),
                         axes.astype(np.float32), names)

    def codes_at(self, points: torch.Tensor) -> torch.Tensor:
        """Map points (N, 2) -> codes (N, D) = mean + u * axes[0] + v * axes[1]."""
        mean, axes = torch.from_numpy(self.map.mean), torch.from_numpy(self.map.axes)
        return mean + points.float() @ axes  # (1-D codes: axes[1] is 0, v is the class row)

    def point_of(self, codes: torch.Tensor) -> list[list[float]]:
        """Codes (N, D) -> their map points, (N, 2) as lists."""
        points = (codes.cpu().numpy() - self.map.mean) @ self.map.axes.T
        return points.tolist()

    # --- decoding and encoding -------------------------------------------------------------

    @torch.inference_mode()
    def images(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> np.ndarray:
        """Codes (N, D) -> mean images as uint8 (N, H, W, C), in one pass."""
        y = None if labels is None else explore.labels_if_conditional(self.model, labels)
        x = self.model.images(codes.float().to(self.device), y)  # (N, C, H, W) in [0, 1]
        return as_uint8(x)

    @torch.inference_mode()
    def encode(self, image: np.ndarray, label: int | None = None) -> dict:
        """One image (H, W, C) uint8 -> its posterior mean, map point, reconstruction and,
        for a conditional model, the code decoded as every class (the `style` figure for
        this image). A conditional model encodes it with `label`, or, when None, with the
        class whose label explains it best (`likeliest_class`)."""
        x = to_float(torch.from_numpy(image).permute(2, 0, 1)[None]).to(self.device)
        guessed = self.model.conditional and label is None
        if guessed:
            label = self.likeliest_class(x)
        y = None if not self.model.conditional else torch.tensor([label], device=self.device)
        mu, _ = self.model.encode(x, y)  # (1, D)
        answer = {"code": mu[0].tolist(), "point": self.point_of(mu)[0],
                  "image": as_uint8(self.model.images(mu, y))[0]}
        if self.model.conditional:
            c = self.model.num_classes
            answer.update(label=label, guessed=guessed, as_classes=self.images(
                mu.expand(c, -1), torch.arange(c)))
        return answer

    @torch.inference_mode()
    def likeliest_class(self, x: torch.Tensor) -> int:
        """The class y whose ELBO of x, log p(x | z, y) - KL(q(z | x, y) || p(z | y)) at z the
        posterior mean, is highest: the class the model reads in a drawing (p(y) uniform;
        Kingma et al. 2014's M2 classifies with this bound)."""
        c = self.model.num_classes
        xs = x.expand(c, *x.shape[1:])  # (C, ...): the image once per class
        noise = torch.zeros(c, self.model.latent_dim, device=self.device)  # z = the mean
        out = self.model(xs, noise, torch.arange(c, device=self.device))
        elbo = self.model.likelihood.log_prob(xs, out["out"]) - out["kl_units"].sum(1)
        return int(elbo.argmax())

    @torch.inference_mode()
    def test_image(self, index: int) -> dict:
        """Test image `index`: the image as the model reads it, its label and its code."""
        x = self.test.images[index:index + 1]
        label = int(self.test.labels[index])
        y = explore.labels_if_conditional(self.model, self.test.labels[index:index + 1])
        mu, _ = self.model.encode(to_float(x).to(self.device), y)
        return {"index": index, "label": label, "code": mu[0].tolist(),
                "point": self.point_of(mu)[0], "image": as_uint8(to_float(x))[0]}

    @torch.inference_mode()
    def sample(self, label: int | None, seed: int) -> dict:
        """One code from the run's own sampler (its `gmm` mixture by default), decoded."""
        generator = torch.Generator(self.device).manual_seed(seed)
        y = None if not self.model.conditional else torch.tensor([label], device=self.device)
        code = self.model.draw_codes(1, None, generator, y)  # (1, D)
        return {"code": code[0].tolist(), "point": self.point_of(code)[0], "label": label,
                "sampler": self.model.default_sampler,
                "image": as_uint8(self.model.images(code, y))[0]}

    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int, mode: str,
                    labels: tuple[int, int] | None = None
                    ) -> tuple[np.ndarray, list[list[float]]]:
        """`steps` images on the path from code `start` to `end` (D,), both included, as
        `vaelab interpolate` decodes it (a conditional model's one-hot labels of the two ends
        blended linearly along the path), and the path's map points."""
        z = explore.interpolate(start.float(), end.float(), steps, mode)  # (steps, D)
        y = None if labels is None else explore.path_labels(self.model, *labels, steps)
        return self.images(z, y), self.point_of(z)

    # --- what the page reads once ----------------------------------------------------------

    def info(self) -> dict:
        c, h, w = self.model.image_shape
        codes = self._codes
        dims = [{"dim": d, "kl": round(float(self.kl[d]), 4),
                 "min": float(min(-SLIDER_LIMIT, codes[:, d].min())),
                 "max": float(max(SLIDER_LIMIT, codes[:, d].max()))} for d in self.slider_dims]
        d = self.model.latent_dim
        plane = ("the code is the point" if d == 2 else "z[0] across, class rows down"
                 if d == 1 else "code = pca_mean + u * pc1 + v * pc2")
        return {
            "name": self.name, "dataset": self.cfg.data.dataset, "mode": self.cfg.data.mode,
            "arch": self.cfg.model.arch, "latent_dim": d, "image_shape": [c, h, w],
            "conditional": self.model.conditional, "classes": list(self.classes),
            "sampler": self.model.default_sampler, "test_count": len(self.test),
            "max_batch": MAX_BATCH, "max_steps": MAX_STEPS,
            "start": pick_test_index(len(self.test), None, 0),  # as `vaelab traverse`
            "pair": list(pick_test_pair(len(self.test), None, None, 0)),  # `interpolate`'s
            "map": {"axes": list(self.map.axis_names), "plane": plane,
                    "method": "pca" if d >= 3 else "none", "count": len(self.map.indices),
                    "mean": self.map.mean.tolist(), "pcs": self.map.axes.tolist()},
            "sliders": dims,
            "class_means": {str(k): v.tolist() for k, v in self.class_means.items()},
        }

    def points(self) -> dict:
        """The map's points (rounded to 4 decimals: far below a pixel), labels, test indices."""
        return {"points": np.round(self.map.points, 4).tolist(),
                "labels": self.map.labels.tolist(), "indices": list(self.map.indices)}


def as_uint8(x: torch.Tensor) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C), channels last."""
    pixels = (x.float() * PIXEL_LEVELS).round_().clamp_(0, PIXEL_LEVELS).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()
