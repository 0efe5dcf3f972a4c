"""Where a command writes: one rule for every file a command writes (--out, compare --plot,
score --json) and every folder (sample --format files, export's OUT).

- no --out: the default name in the default folder;
- an existing folder, or a path ending in "/": the default name inside it;
- any other path: that file, which must end in one of the command's extensions.

A missing parent folder is created when the file is written. An unsupported extension, or a
place that cannot be written (a parent that is a file, /proc, no permission), raises a
ConfigError that names it, before any work is done, and creates nothing."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError


def output_path(out: str | Path | None, default_dir: str | Path, default_name: str,
                suffixes: Sequence[str], flag: str = "--out") -> Path:
    """The file to write: `out` (a file, or a folder for `default_name`), else
    `default_dir/default_name`; checked to end in one of `suffixes` (".png", ...) and to be
    writable. `flag` names the option in the error message."""
    if out is None:
        path = Path(default_dir) / default_name
    elif str(out).endswith(("/", os.sep)) or Path(out).is_dir():
        path = Path(out) / default_name
    else:
        path = Path(out)
    where = _where(flag, out, path)
    if path.suffix.lower() not in suffixes:
        kind = f"unsupported extension {path.suffix}" if path.suffix else "no file extension"
        raise ConfigError(f"{where}: {kind}; give a {' or '.join(suffixes)} file, or a folder "
                          f"(an existing one, or a path ending in /) to write {default_name} "
                          f"in")
    if path.is_dir():
        raise ConfigError(f"{where}: {path} is a folder; give a file name")
    _check_writable(path.parent, where)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{where}: cannot overwrite {path} (permission denied)")
    return path


def output_folder(out: str | Path | None, default: str | Path | None = None,
                  flag: str = "--out") -> Path:
    """The folder to write files in: `out`, else `default`; checked to be a writable folder,
    or one that can be created."""
    path = Path(default if out is None else out)
    where = _where(flag, out, path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: a file of that name exists; give a folder to write the "
                          f"files in")
    _check_writable(path, where)
    return path


def _where(flag: str, out, path: Path) -> str:
    """How an error names the place: as the user gave it, else the default path."""
    return f"{flag} {out}" if out is not None else str(path)


def _check_writable(folder: Path, where: str) -> None:
    """Create (and at once remove) a file in `folder`, or in the nearest existing folder
    above it, which is where the first missing folder would be made: the only test that
    /proc, read-only mounts and permissions all answer truly, for root too."""
    place = folder
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise ConfigError(f"{where}: cannot write there: {place} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=place, prefix=".vaelab-probe-")
    except OSError as e:
        why = "it takes no new files" if e.errno == errno.ENOENT else (e.strerror or str(e))
        raise ConfigError(f"{where}: cannot write in {place} ({why})") from None
    os.close(fd)
    os.unlink(probe)
