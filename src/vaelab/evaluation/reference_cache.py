"""The validation scores behind `vaelab score`'s threshold, kept beside the checkpoint.

Scoring 5,000 validation images takes minutes at K = 100, and a user scoring image after
image would pay it on every call. The scores are saved in the checkpoint's folder as
`score_reference_k<K>_seed<S>[_label<L>].safetensors`, with the SHA-256 of the weights they
were computed from: a checkpoint rewritten by training replaces its folder (and drops the
file), and a file whose weights digest does not match is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..runs.checkpoint import WEIGHTS

FORMAT = "vaelab-score-reference-1"


@dataclass(frozen=True)
class Reference:
    """The validation scores a threshold is taken from, and where the images came from."""

    scores: torch.Tensor  # (N,) float64 nats
    source: str


def file_name(k: int, seed: int, label: int | None) -> str:
    return f"score_reference_k{k}_seed{seed}" + ("" if label is None else f"_label{label}") \
        + ".safetensors"


def weights_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    with (folder / WEIGHTS).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_reference(folder: Path | None, name: str,
                     compute: Callable[[], Reference]) -> tuple[Reference, bool]:
    """The reference saved as `folder/name` for these weights, else `compute()`'s, saved
    there (atomically; kept for this call only if the folder cannot be written). Returns it
    and whether it came from the file."""
    if folder is None:
        return compute(), False
    path, digest = folder / name, weights_digest(folder)
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") == FORMAT and metadata.get("weights_sha256") == digest:
                return Reference(f.get_tensor("scores"), metadata["source"]), True
    except (OSError, SafetensorError, KeyError, ValueError):
        pass  # missing, torn or foreign: compute it again
    reference = compute()
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file({"scores": reference.scores.contiguous()}, str(tmp), metadata={
            "format": FORMAT, "weights_sha256": digest, "source": reference.source})
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
    return reference, False
