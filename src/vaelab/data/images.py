"""Images: grids of samples and original/reconstruction pairs, as PNG and GIF (Pillow).

Grayscale images (C = 1) become "L" images, colour ones (C = 3) "RGB". Pixels are scaled
with nearest-neighbour only, so images are never blurred."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

GRID_LINE = 0.3  # grey level of the lines between tiles


def grid(images: torch.Tensor, ncol: int, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one uint8 array, (rows*(H+p)+p, ncol*(W+p)+p) for C = 1
    or the same with a last axis of 3 for colour, tiles in row-major order."""
    n, channels, h, w = images.shape
    nrow = -(-n // ncol)
    canvas = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding,
                      channels), GRID_LINE, dtype=np.float32)
    pixels = images.detach().float().clamp(0, 1).cpu().numpy().transpose(0, 2, 3, 1)
    for i in range(n):
        r, c = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        canvas[top:top + h, left:left + w] = pixels[i]
    canvas = (canvas * 255).round().astype(np.uint8)
    return canvas[..., 0] if channels == 1 else canvas


def to_image(array: np.ndarray) -> Image.Image:
    """A (H, W) or (H, W, 3) uint8 array as a Pillow image."""
    return Image.fromarray(array, mode="L" if array.ndim == 2 else "RGB")


def save_png(array: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write a uint8 array (grey or RGB) as PNG, enlarged `scale` times (nearest-neighbour)."""
    image = to_image(array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path


def pairs(originals: torch.Tensor, reconstructions: torch.Tensor, ncol: int) -> torch.Tensor:
    """Interleave rows: ncol originals, then their ncol reconstructions, and so on.

    (N, 1, H, W) twice -> (2N, 1, H, W), ready for `grid(..., ncol)`.
    """
    n = len(originals) - len(originals) % ncol
    o = originals[:n].reshape(-1, ncol, *originals.shape[1:])
    r = reconstructions[:n].reshape(-1, ncol, *originals.shape[1:])
    return torch.stack([o, r], dim=1).reshape(-1, *originals.shape[1:])


def save_gif(frames: torch.Tensor, path: str | Path, scale: int = 4,
             frame_ms: int = 80) -> Path:
    """An animated GIF that plays the frames (T, C, H, W) forward, then back, and loops."""
    pixels = (frames.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    pixels = pixels[:, 0] if frames.shape[1] == 1 else pixels.transpose(0, 2, 3, 1)
    images = [to_image(p).resize((p.shape[1] * scale, p.shape[0] * scale), Image.NEAREST)
              for p in pixels]
    there_and_back = images + images[-2:0:-1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    there_and_back[0].save(path, save_all=True, append_images=there_and_back[1:],
                           duration=frame_ms, loop=0)
    return path
