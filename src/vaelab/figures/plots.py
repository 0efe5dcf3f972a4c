"""Figures (matplotlib, written as PNG): latent scatter, manifold, traversal, interpolation
strip, samples by class, style transfer and training curves, in one consistent look.

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

from ..data.images import grid  # noqa: E402

DPI = 100
RIGHT, TOP, BOTTOM = 30, 60, 80  # margins in pixels around an image of digits
LEFT = {"manifold": 90, "traversal": 230, "strip": 40,  # room for each figure's row labels
        "classes": 110, "style": 200}
HEADER = 30  # extra room above a figure whose columns are labelled at the top
HEADER_ROTATED = 90  # the same, for long column names written at 45 degrees ...
RIGHT_ROTATED = 90  # ... whose last name reaches past the right edge of the digits
STYLE_GAP = 4  # unscaled pixels of white between a figure's first column and the rest
SCATTER_ALPHA = 0.6
MAX_SIDE = 840  # digit grids are enlarged by an integer factor up to about this many pixels
STYLE = {"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "legend.fontsize": 10,
         "axes.spines.top": False, "axes.spines.right": False, "figure.facecolor": "white",
         "savefig.facecolor": "white"}
SPLIT_STYLE = {"train": "-", "val": "--"}


def tile_scale(columns: int, rows: int = 1, side: int = 28) -> int:
    """Integer enlargement of tiles `side` pixels high and wide (at most) so that the grid
    is at most about MAX_SIDE pixels."""
    return max(1, MAX_SIDE // (side * max(columns, rows)))


def _tile(images: torch.Tensor, scale: int) -> tuple[int, int]:
    """(width, height) of one enlarged tile of `images` (N, C, H, W)."""
    return images.shape[-1] * scale, images.shape[-2] * scale


def _mode(images: torch.Tensor) -> str:
    """How `save` stores a figure of these images: one grey channel, or full RGB."""
    return "gray" if images.shape[1] == 1 else "rgb"


def digit_figure(pixels: np.ndarray, scale: int, title: str, left: int, top: int = TOP,
                 right: int = RIGHT):
    """A figure holding `pixels` (H, W) or (H, W, 3) uint8 enlarged `scale` times, 1:1 on
    the canvas, `left` pixels from the left edge, `top` from the top and `right` from the
    right."""
    pixels = np.kron(pixels, np.ones((scale, scale) + (1,) * (pixels.ndim - 2),
                                     dtype=pixels.dtype))
    h, w = pixels.shape[:2]
    width, height = left + w + right, top + h + BOTTOM
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        ax = fig.add_axes((left / width, BOTTOM / height, w / width, h / height))
        ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255,
                  interpolation="nearest",
                  extent=(0, w, h, 0), aspect="auto")
        ax.set_title(title)
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
    return fig, ax


def save(fig, path: str | Path, mode: str = "chart") -> Path:
    """Write the figure as a compact PNG: one 8-bit grey channel for figures of grayscale
    images ("gray"), RGB for colour images ("rgb"), a 64-colour palette for charts (a third
    to a quarter of matplotlib's RGBA file, with no visible difference)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    rgba = Image.fromarray(np.asarray(fig.canvas.buffer_rgba()))
    plt.close(fig)
    if mode == "gray":
        image = rgba.convert("L")
    elif mode == "rgb":
        image = rgba.convert("RGB")
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
    scale = tile_scale(n, side=max(images.shape[-2:]))
    width, height = _tile(images, scale)
    fig, ax = digit_figure(grid(images, ncol=n, padding=0), scale, title, LEFT["manifold"])
    labels = [f"{v:.2f}" for v in values.tolist()]
    ax.set_xticks(_centres(n, width), labels, rotation=90)
    ax.set_yticks(_centres(n, height), labels[::-1])
    ax.set_xlabel(f"z[{dims[0]}]  (Gaussian quantiles)")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.tick_params(labelsize=8 if n > 12 else 10)
    return save(fig, path, mode=_mode(images))


def traversal(images: torch.Tensor, row_labels: Sequence[str], values: torch.Tensor,
              path: str | Path, title: str) -> Path:
    """One row per latent dimension, each varying that dimension over `values`."""
    rows, columns = len(row_labels), len(values)
    scale = tile_scale(columns, rows, max(images.shape[-2:]))
    width, height = _tile(images, scale)
    fig, ax = digit_figure(grid(images, ncol=columns, padding=0), scale, title,
                           LEFT["traversal"])
    ax.set_xticks(_centres(columns, width), [f"{v:+.1f}" for v in values.tolist()])
    _label_rows(ax, row_labels, height)
    ax.set_xlabel("value of the varied dimension")
    return save(fig, path, mode=_mode(images))


def _label_rows(ax, row_labels: Sequence[str], tile: int) -> None:
    """Write each row's label at its left, centred on the row (traversal, class grids)."""
    ax.set_yticks(_centres(len(row_labels), tile), row_labels)


def class_grid(images: torch.Tensor, class_names: Sequence[str], path: str | Path,
               title: str, xlabel: str = "", scale: int | None = None) -> Path:
    """One row per class, its name at the left: images (K * columns, C, H, W), row-major,
    row k drawn for class k. `scale` defaults to the largest that fits MAX_SIDE."""
    rows = len(class_names)
    columns = len(images) // rows
    scale = scale or tile_scale(columns, rows, max(images.shape[-2:]))
    fig, ax = digit_figure(grid(images, ncol=columns, padding=0), scale, title,
                           LEFT["classes"])
    _label_rows(ax, class_names, _tile(images, scale)[1])
    ax.set_xticks([])
    ax.set_xlabel(xlabel)
    return save(fig, path, mode=_mode(images))


def style_margins(class_names: Sequence[str]) -> tuple[int, int]:
    """Pixels above and right of the style figure's digits: room for the title and the
    column names, which are written at 45 degrees when some are longer than a digit column
    is wide (Fashion-MNIST's "T-shirt/top"), and then reach past the last column."""
    if max(map(len, class_names)) > 4:
        return TOP + HEADER_ROTATED, RIGHT_ROTATED
    return TOP + HEADER, RIGHT


def style_grid(originals: torch.Tensor, decoded: torch.Tensor, row_labels: Sequence[str],
               class_names: Sequence[str], path: str | Path, title: str) -> Path:
    """Style transfer: originals (R, C, H, W) in the first column, then decoded
    (R * K, C, H, W), row-major: row r is test image r's code decoded under each of the
    K classes. A white gap separates the originals; class names head the columns."""
    rows, classes = len(originals), len(class_names)
    scale = tile_scale(classes + 1, rows, max(originals.shape[-2:]))
    tile, height = _tile(originals, scale)
    first = grid(originals, ncol=1, padding=0)  # (R*H, W)
    rest = grid(decoded, ncol=classes, padding=0)  # (R*H, K*W)
    gap = np.full((len(first), STYLE_GAP, *first.shape[2:]), 255, dtype=np.uint8)
    top, right = style_margins(class_names)
    fig, ax = digit_figure(np.concatenate([first, gap, rest], axis=1), scale, title,
                           LEFT["style"], top=top, right=right)
    offset = (originals.shape[-1] + STYLE_GAP) * scale  # where the decoded columns start
    rotated = right == RIGHT_ROTATED
    ax.set_xticks([tile / 2, *(offset + _centres(classes, tile))],
                  ["original", *class_names], rotation=45 if rotated else 0,
                  ha="left" if rotated else "center")
    ax.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False)
    _label_rows(ax, row_labels, height)
    ax.set_xlabel("each row: one test image's code, decoded with every class's label")
    return save(fig, path, mode=_mode(originals))


def strip(images: torch.Tensor, path: str | Path, title: str,
          first: str, last: str) -> Path:
    """A single row of images, its ends labelled."""
    columns = len(images)
    scale = max(2, tile_scale(columns, side=max(images.shape[-2:])))
    tile = _tile(images, scale)[0]
    fig, ax = digit_figure(grid(images, ncol=columns, padding=0), scale, title, LEFT["strip"])
    ax.set_xticks([tile / 2, (columns - 0.5) * tile], [first, last])
    ax.set_yticks([])
    return save(fig, path, mode=_mode(images))


def latent_scatter(points: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                   path: str | Path, title: str, axis_names: tuple[str, str],
                   class_rows: bool = False) -> Path:
    """(N, 2) points coloured by class, with a legend naming the classes. `class_rows`
    labels the vertical axis with the class names (for 1-D latents drawn one row a class).
    Unlabelled images (no classes) are drawn in one colour, without a legend."""
    groups = [(labels == k, name) for k, name in enumerate(classes)] or [
        (np.ones(len(points), dtype=bool), None)]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9.5, 7.5), dpi=DPI, layout="constrained")
        cmap = plt.get_cmap("tab10")
        for k, (chosen, name) in enumerate(groups):
            ax.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=SCATTER_ALPHA,
                       color=cmap(k % 10), label=name, rasterized=True)
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
        if class_rows:
            ax.set_yticks(range(len(classes)), classes)
        ax.set_title(title)
        if classes:
            ax.legend(title="class", markerscale=4, loc="center left",
                      bbox_to_anchor=(1.01, 0.5), frameon=False)
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


def rate_distortion(points: Sequence[dict], path: str | Path,
                    title: str = "Rate-distortion trade-off") -> Path:
    """The rate-distortion plane of Alemi et al. (2018, "Fixing a Broken ELBO", fig. 1):
    one point per run at (rate, distortion) = (test KL, test reconstruction term), nats per
    image, labelled with its beta and name and joined in order of beta, over faint lines of
    constant -ELBO = rate + distortion. `points`: dicts with name, beta, rate, distortion
    and protocol, sorted by beta (see evaluate.rate_distortion_points)."""
    from matplotlib.ticker import MaxNLocator

    rate = np.array([p["rate"] for p in points])
    distortion = np.array([p["distortion"] for p in points])
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 7.5), dpi=DPI, layout="constrained")
        ax.plot(rate, distortion, "-", color="C0", alpha=0.5, zorder=2)
        ax.scatter(rate, distortion, s=45, color="C0", zorder=3)
        best = int(np.argmin(rate + distortion))
        ax.scatter(rate[best], distortion[best], s=160, facecolors="none", edgecolors="C3",
                   linewidths=1.5, zorder=3)
        for i, p in enumerate(points):
            text = f"β = {p['beta']:g}\n{p['name']}" + ("\nlowest -ELBO" if i == best else "")
            ax.annotate(text, (p["rate"], p["distortion"]), xytext=(8, 6),
                        textcoords="offset points", fontsize=9, zorder=4,
                        color="C3" if i == best else "black")
        # equal scales on both axes (a nat of rate is a nat of distortion, so the lines of
        # constant -ELBO run at 45 degrees and the curve's slope at beta's point is -beta),
        # a square box with room for the labels, then those lines across the box
        half = 0.62 * max(np.ptp(rate), np.ptp(distortion), 1.0)
        x0 = max(0.0, (rate.min() + rate.max()) / 2 - half)
        y0 = (distortion.min() + distortion.max()) / 2 - half
        x1, y1 = x0 + 2 * half, y0 + 2 * half
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        levels = MaxNLocator(nbins=6).tick_values(x0 + y0, x1 + y1)
        for level in levels[(levels > x0 + y0) & (levels < x1 + y1)]:
            # the segment of rate + distortion = level inside the box
            a, b = max(x0, level - y1), min(x1, level - y0)
            ax.plot([a, b], [level - a, level - b], ":", color="0.55", lw=1, zorder=1)
            # the label where the line is farthest from every point (equal scales: plain
            # Euclidean distance) and clear of the box's edges, on a white patch
            along = a + np.linspace(0, 1, 21) * (b - a)  # (21,) candidate rates
            clear = np.minimum.reduce([along - x0, x1 - along, level - along - y0,
                                       y1 - level + along]) > 0.09 * (x1 - x0)
            if not clear.any():
                continue
            gaps = np.hypot(along[:, None] - rate, level - along[:, None] - distortion)
            lx = along[np.where(clear, gaps.min(1), -1).argmax()]
            ax.text(lx, level - lx, f"-ELBO = {level:g}", color="0.4", fontsize=8,
                    rotation=-45, rotation_mode="anchor", transform_rotates_text=True,
                    ha="center", va="center", zorder=1, clip_on=True,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        ax.set_xlabel("rate: test KL(q(z|x) || p(z)), nats per image")
        ax.set_ylabel("distortion: test E_q[-log p(x|z)], nats per image")
        ax.set_title(f"{title}\n{points[0]['protocol']}, test set")
        ax.grid(alpha=0.2)
    return save(fig, path)
