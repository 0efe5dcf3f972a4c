"""Downloads checked against a published MD5 while they stream to a temporary file, which is
renamed into place only when it matches: a failed or cut-short download leaves nothing."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import DataError
from .idx import CHUNK


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(mirrors: tuple[str, ...], name: str, md5: str, folder: Path) -> None:
    """Fetch `name` from the first mirror that serves it with the given MD5, into `folder`.
    A DataError says in short why every mirror failed (each reason once)."""
    errors: dict[str, None] = {}  # reasons, in order, without repeats
    for mirror in mirrors:
        url = mirror + name
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
                digest = hashlib.md5(usedforsecurity=False)
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != md5:
                errors[f"checksum mismatch from {urllib.parse.urlsplit(url).netloc}"] = None
                continue
            os.replace(tmp, folder / name)
            return
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
            errors[_describe(e)] = None
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise DataError("; ".join(errors))


def _describe(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, http.client.IncompleteRead):
        return f"transfer cut short after {len(error.partial)} bytes"
    text = str(getattr(error, "reason", None) or error or type(error).__name__)
    return re.sub(r"^\[Errno -?\d+\] ", "", text)  # "[Errno -2] Name or service not known"
