"""Figures (matplotlib, written as PNG): latent scatter, manifold, traversal, interpolation
strip and training curves, in one consistent look.

Figures that show digits place the image pixels 1:1 on the canvas (the axes are sized in
pixels and drawn at 100 dpi), so digits are never resampled or blurred, and the output size
is a known function of the grid: `LEFT[figure] + columns * tile + RIGHT` wide, and so on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .viz import grid  # noqa: E402

DPI = 100
RIGHT, TOP, BOTTOM = 30, 60, 80  # margins in pixels around an image of digits
LEFT = {"manifold": 90, "traversal": 230, "strip": 40}  # room for each figure's row labels
SCATTER_ALPHA = 0.6
MAX_SIDE = 840  # digit grids are enlarged by an integer factor up to about this many pixels
STYLE = {"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "legend.fontsize": 10,
         "axes.spines.top": False, "axes.spines.right": False, "figure.facecolor": "white",
         "savefig.facecolor": "white"}
SPLIT_STYLE = {"train": "-", "val": "--"}


def tile_scale(columns: int, rows: int = 1) -> int:
    """Integer enlargement of 28x28 tiles so the grid is at most about MAX_SIDE pixels."""
    return max(1, MAX_SIDE // (28 * max(columns, rows)))


def digit_figure(pixels: np.ndarray, scale: int, title: str, left: int):
    """A figure holding `pixels` (H, W) uint8 enlarged `scale` times, 1:1 on the canvas,
    `left` pixels from the left edge."""
    pixels = np.kron(pixels, np.ones((scale, scale), dtype=pixels.dtype))
    h, w = pixels.shape
    width, height = left + w + RIGHT, TOP + h + BOTTOM
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        ax = fig.add_axes((left / width, BOTTOM / height, w / width, h / height))
        ax.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest",
                  extent=(0, w, h, 0), aspect="auto")
        ax.set_title(title)
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
    return fig, ax


def save(fig, path: str | Path, gray: bool = False) -> Path:
    """Write the figure as a compact PNG: one 8-bit grey channel for figures of digits,
    a 64-colour palette for charts (a third to a quarter of matplotlib's RGBA file, with
    no visible difference)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    rgba = Image.fromarray(np.asarray(fig.canvas.buffer_rgba()))
    plt.close(fig)
    if gray:
        image = rgba.convert("L")
    else:
        image = rgba.convert("RGB").quantize(palette=_chart_palette(),
                                             dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    return path


def _chart_palette() -> Image.Image:
    """A fixed 56-colour palette: the tab10 class colours, alone and blended over white as
    1 to 3 overlapping scatter points draw them, plus 16 greys for text and grid. Fixed, so
    every class keeps its exact colour however few pixels it covers."""
    tab10 = np.array(plt.get_cmap("tab10").colors)  # (10, 3) in [0, 1]
    colours = []
    for layers in (1, 2, 3, None):  # None: opaque lines and legend markers
        alpha = 1.0 if layers is None else 1 - (1 - SCATTER_ALPHA) ** layers
        colours += list(alpha * tab10 + (1 - alpha))
    colours += [np.full(3, g) for g in np.linspace(0, 1, 16)]
    flat = (np.array(colours) * 255).round().astype(np.uint8).ravel().tolist()
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat + flat[-3:] * (256 - len(colours)))
    return palette


def _centres(count: int, tile: int) -> np.ndarray:
    return (np.arange(count) + 0.5) * tile


def manifold(images: torch.Tensor, values: torch.Tensor, dims: tuple[int, int],
             path: str | Path, title: str) -> Path:
    """The n x n decoded grid with the latent value of each row and column on the axes."""
    n = len(values)
    scale = tile_scale(n)
    tile = 28 * scale
    fig, ax = digit_figure(grid(images, ncol=n, padding=0), scale, title, LEFT["manifold"])
    labels = [f"{v:.2f}" for v in values.tolist()]
    ax.set_xticks(_centres(n, tile), labels, rotation=90)
    ax.set_yticks(_centres(n, tile), labels[::-1])
    ax.set_xlabel(f"z[{dims[0]}]  (Gaussian quantiles)")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.tick_params(labelsize=8 if n > 12 else 10)
    return save(fig, path, gray=True)


def traversal(images: torch.Tensor, row_labels: Sequence[str], values: torch.Tensor,
              path: str | Path, title: str) -> Path:
    """One row per latent dimension, each varying that dimension over `values`."""
    rows, columns = len(row_labels), len(values)
    scale = tile_scale(columns, rows)
    tile = 28 * scale
    fig, ax = digit_figure(grid(images, ncol=columns, padding=0), scale, title,
                           LEFT["traversal"])
    ax.set_xticks(_centres(columns, tile), [f"{v:+.1f}" for v in values.tolist()])
    ax.set_yticks(_centres(rows, tile), row_labels)
    ax.set_xlabel("value of the varied dimension")
    return save(fig, path, gray=True)


def strip(images: torch.Tensor, path: str | Path, title: str,
          first: str, last: str) -> Path:
    """A single row of images, its ends labelled."""
    columns = len(images)
    scale = max(2, tile_scale(columns))
    tile = 28 * scale
    fig, ax = digit_figure(grid(images, ncol=columns, padding=0), scale, title, LEFT["strip"])
    ax.set_xticks([tile / 2, (columns - 0.5) * tile], [first, last])
    ax.set_yticks([])
    return save(fig, path, gray=True)


def latent_scatter(points: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                   path: str | Path, title: str, axis_names: tuple[str, str],
                   class_rows: bool = False) -> Path:
    """(N, 2) points coloured by class, with a legend naming the classes. `class_rows`
    labels the vertical axis with the class names (for 1-D latents drawn one row a class)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9.5, 7.5), dpi=DPI, layout="constrained")
        cmap = plt.get_cmap("tab10")
        for k, name in enumerate(classes):
            chosen = labels == k
            ax.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=SCATTER_ALPHA,
                       color=cmap(k % 10), label=name, rasterized=True)
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
        if class_rows:
            ax.set_yticks(range(len(classes)), classes)
        ax.set_title(title)
        ax.legend(title="class", markerscale=4, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  frameon=False)
    return save(fig, path)


def curves(runs: Sequence[tuple[str, list[dict]]], path: str | Path) -> Path:
    """Loss, reconstruction and KL per epoch; train solid, validation dashed; runs overlaid."""
    terms = (("loss", "negative ELBO"), ("recon", "reconstruction"), ("kl", "KL"))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), dpi=DPI, layout="constrained")
        cmap = plt.get_cmap("tab10")
        for r, (name, records) in enumerate(runs):
            epochs = [rec["epoch"] for rec in records]
            for ax, (term, label) in zip(axes, terms):
                for split, line in SPLIT_STYLE.items():
                    key = f"{split}_{term}"
                    if any(key in rec for rec in records):
                        ax.plot(epochs, [rec.get(key, np.nan) for rec in records], line,
                                color=cmap(r % 10), marker="o", markersize=3,
                                label=f"{name} ({split})" if len(runs) > 1 else split)
                ax.set_title(label)
                ax.set_xlabel("epoch")
                ax.set_ylabel("nats per image")
                ax.grid(alpha=0.3)
        axes[0].legend()
    return save(fig, path)
