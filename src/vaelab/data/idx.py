"""IDX files (the MNIST format): a magic number, big-endian dimensions, unsigned bytes.

The reader never trusts the header: it reads in chunks, so a file that claims terabytes
fails at its end, not in an allocation.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from ..errors import DataError

IDX_UBYTE = 0x08
CHUNK = 1 << 20  # bytes per read


def _read_exactly(f, n: int, path: Path) -> bytearray:
    """Read n bytes in chunks, so a header that claims terabytes fails at EOF, not in malloc.
    A bytearray, so the array made from it is writable and needs no copy."""
    out = bytearray()
    while len(out) < n:
        chunk = f.read(min(CHUNK, n - len(out)))
        if not chunk:
            raise DataError(f"{path}: truncated IDX file (expected {n} bytes of data, "
                            f"found {len(out)})")
        out += chunk
    return out


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or raw) into a uint8 array.

    Raises DataError naming the file when the magic number, the dimensions or the size are
    wrong, or when the file is truncated or has trailing bytes.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            header = f.read(4)
            if len(header) < 4 or header[:2] != b"\x00\x00" or header[2] != IDX_UBYTE \
                    or not 1 <= header[3] <= 4:
                raise DataError(f"{path}: not an IDX file of unsigned bytes "
                                f"(bad magic number {header.hex() or 'empty'})")
            ndim = header[3]
            shape = tuple(int(d) for d in np.frombuffer(
                _read_exactly(f, 4 * ndim, path), dtype=">u4"))
            count = math.prod(shape)  # Python ints: a hostile header cannot overflow
            data = _read_exactly(f, count, path)
            if f.read(1):
                raise DataError(f"{path}: trailing bytes after the {count} declared in the "
                                f"header {shape}")
    except (OSError, EOFError, gzip.BadGzipFile) as e:  # corrupt gzip stream or unreadable
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    try:
        return np.frombuffer(data, dtype=np.uint8).reshape(shape)
    except ValueError:  # e.g. (0, 2^31, 2^31): no bytes, but a shape numpy cannot hold
        raise DataError(f"{path}: the header's dimensions {shape} are not a valid array"
                        ) from None
