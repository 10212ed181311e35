"""Crash-safe file writes: a file is either its previous version or its complete new one, never a part.

The new content goes to a hidden temporary file in the target's folder (``.<name>.<random>.tmp``), is
flushed and fsynced, then ``os.replace``-d over the target (atomic on POSIX) and the folder is fsynced
so the rename itself persists. Written by hand: the standard library has no atomic-replace writer and
fsspec's transactions stage files in the system temp folder, whose commit to another filesystem is a
copy that a kill can cut short.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "remove_stale_temps"]

# what atomic_path's temporary files are called: "." + the target's name + "." + mkstemp's random part + ".tmp"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write the new file to; on leaving the block it is
    fsynced and renamed over ``path``. If the block raises (or the process is interrupted), the
    temporary file is removed and ``path`` is left as it was.

    Temporary files of ``path`` left by a process killed while writing are removed after the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if _TEMP_NAME.match(stale.name):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left anywhere under ``folder`` (a process killed
    while writing); call it only where no other process writes (e.g. under a run's lock). Returns them."""
    removed = []
    for candidate in Path(folder).rglob(".*.tmp"):
        if candidate.is_file() and _TEMP_NAME.match(candidate.name):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        _fsync(folder)
