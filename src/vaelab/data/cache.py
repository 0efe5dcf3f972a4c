"""The decoded cache: a collection read from files once, kept as uint8 tensors.

Decoding 60,000 JPEG files takes tens of seconds on two cores; reading them back from one
safetensors file takes well under one. A cache file is named by the source's resolved path
and the reading options, and holds a fingerprint of the source (every file's relative path,
size and modification time): a source that changed is read again, never served stale. Files
are written to a temporary name and renamed, so a killed run leaves no torn cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .imageset import ImageSet

FORMAT = "vaelab-decoded-1"


def cache_dir() -> Path:
    """`$VAELAB_CACHE_DIR`, else the user cache directory (e.g. ~/.cache/vaelab)."""
    if os.environ.get("VAELAB_CACHE_DIR"):
        return Path(os.environ["VAELAB_CACHE_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vaelab"))


def fingerprint(source: Path) -> str:
    """SHA-256 over every file under `source` (relative path, size, mtime), or of the one file."""
    digest = hashlib.sha256()
    paths = [source] if source.is_file() else sorted(
        Path(folder, name) for folder, _, names in os.walk(source) for name in names)
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
                      .encode())
    return digest.hexdigest()


def cache_path(source: Path, options: str) -> Path:
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "decoded" / f"{source.name}-{key}-{options}.safetensors"


def cached(source: Path, options: str, read: Callable[[], ImageSet],
           log: Callable[[str], None] | None = None) -> ImageSet:
    """The ImageSet of `source` read with `options`: from the cache when it matches the
    source's fingerprint, else `read()`, then saved (kept for this call only if the cache
    folder cannot be written)."""
    path, stamp = cache_path(source, options), fingerprint(source)
    found = load(path, stamp)
    if found is not None:
        return found
    if log:
        log(f"reading {source} (once; later runs read the decoded copy in {path.parent})")
    images = read()
    try:
        save(images, path, stamp)
    except OSError as e:
        if log:
            log(f"could not cache the decoded images in {path.parent} ({e.strerror or e})")
    return images


def save(images: ImageSet, path: Path, stamp: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{split}_{kind}": values[split].contiguous()
               for kind, values in (("images", images.images), ("labels", images.labels))
               for split in images.images}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "fingerprint": stamp,
                                               "classes": json.dumps(images.classes)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, stamp: str) -> ImageSet | None:
    """The cached ImageSet at `path` if it is complete and of this fingerprint, else None."""
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT or metadata.get("fingerprint") != stamp:
                return None
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        splits = [key.removesuffix("_images") for key in tensors if key.endswith("_images")]
        return ImageSet({s: tensors[f"{s}_images"] for s in splits},
                        {s: tensors[f"{s}_labels"] for s in splits},
                        tuple(json.loads(metadata["classes"])))
    except (OSError, SafetensorError, KeyError, ValueError):
        return None  # missing, torn or foreign: read the source again
