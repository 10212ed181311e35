"""Writing files whole or not at all, and write failures in one line naming the path.

A file is either its previous version or its complete new one, never a part: the new content goes to a
hidden temporary file beside the target (``.<name>.<random>.tmp``), is flushed and fsynced, then
``os.replace``-d over the target (atomic on POSIX) and the folder is fsynced so the rename itself
persists. :func:`atomic_write` hands the block a binary file (restored images, exports);
:func:`atomic_path` a path, for writers that take one (``torch.save``, safetensors). On an exception
(``KeyboardInterrupt``/``SystemExit`` included) the temporary file is removed and the target left as it
was; a process killed outright leaves its temporary file, which the next write of the same name, or
:func:`remove_stale_temps` at a run's start, removes.

Written by hand: the standard library has no atomic-replace writer, and fsspec's transactions stage files
in the system temp folder, whose commit to another filesystem is a copy that a kill can cut short.
``os.open(O_EXCL)``, ``os.fsync`` and ``os.replace`` do the work; what is added is the clean-up, and the
translation of ``OSError`` into messages that name the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import secrets
import stat
from pathlib import Path
from typing import IO, Iterator

from restore.errors import NoSpaceError, WriteError

__all__ = ["atomic_write", "atomic_path", "atomic_write_text", "remove_stale_temps", "check_output_folder",
           "WriteError", "NoSpaceError", "no_space_error", "describe_write_error"]

# what the temporary files are called: "." + the target's name + "." + a random part + ".tmp"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")


def no_space_error(err: BaseException, path: str | os.PathLike, folder: bool = False) -> NoSpaceError | None:
    """A :class:`NoSpaceError` naming where ``path`` was written if ``err`` — or an exception it was raised from
    or while handling — is an ``OSError`` ``ENOSPC``/``EDQUOT`` (``torch.save`` reports a full disk as
    ``RuntimeError: … unexpected pos …`` raised while handling it), else None.

    ``path`` is the file written, or with ``folder=True`` the folder a run writes into; the OSError's own
    file name, when it has one, is named instead.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, NoSpaceError):
            return err
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            if err.filename:
                path, folder = err.filename, False
            path = Path(path)
            where = f"{path}" if folder else f"{path.parent} (writing {path.name})"
            return NoSpaceError(errno.ENOSPC, f"no space left on {where}: free some space there or write elsewhere",
                                str(path))
        err = err.__cause__ or err.__context__
    return None


def describe_write_error(err: OSError, path: str | os.PathLike) -> str:
    """One line saying why ``path`` could not be written, naming it and what to do."""
    full = no_space_error(err, path)
    if full is not None:
        return full.strerror
    path = Path(path)
    reasons = {
        errno.ENOENT: f"{path.parent} does not exist or takes no new files",
        errno.ENOTDIR: f"a part of {path.parent} is a file, not a folder",
        errno.EEXIST: f"a part of {path.parent} is a file, not a folder",
        errno.EISDIR: "it is a folder",
        errno.ELOOP: f"{path.parent} is a symbolic link loop",
        errno.EACCES: f"permission denied in {path.parent}",
        errno.EPERM: f"permission denied in {path.parent}",
        errno.EROFS: f"{path.parent} is on a read-only file system",
    }
    reason = reasons.get(err.errno, err.strerror or str(err))
    return f"cannot write {path}: {reason}; choose another output path"


def check_output_folder(folder: str | os.PathLike) -> None:
    """Refuse a folder that cannot hold new files, before anything is computed or written.

    The folder need not exist yet (it is created later): its nearest existing ancestor must be a
    writable folder, reached without a dangling symbolic link or a link loop.

    Raises:
        WriteError: naming the part that is a file, a link loop or dangling link, or not writable.
    """
    folder = Path(folder)
    loop = None  # the outermost part that loops: the link itself
    for part in (folder, *folder.parents):
        try:
            info = os.stat(part)
        except (FileNotFoundError, NotADirectoryError):
            if os.path.islink(part):
                raise WriteError(errno.ENOENT, f"{part} is a symbolic link to {os.readlink(part)}, which does not "
                                               "exist: create its target or choose another folder", str(part)) from None
            continue  # created when written; look further up
        except OSError as err:
            if err.errno == errno.ELOOP:
                loop = part
                continue
            raise WriteError(err.errno, f"cannot use {folder}: {err.strerror} ({part})", str(part)) from None
        if loop is not None:
            raise WriteError(errno.ELOOP, f"{loop} is a symbolic link loop: remove it or choose another folder",
                             str(loop))
        if not stat.S_ISDIR(info.st_mode):
            raise WriteError(errno.ENOTDIR, f"{part} is a file, not a folder: choose another output folder", str(part))
        if not os.access(part, os.W_OK | os.X_OK):
            raise WriteError(errno.EACCES, f"cannot write into {part}: permission denied; choose another output "
                                           "folder", str(part))
        return


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a binary file that replaces ``path`` only once the ``with`` block completes.

    The folder must exist. On an exception (or ``KeyboardInterrupt``/``SystemExit``) the temporary
    file is removed and ``path`` is left as it was. An ``OSError`` is raised as :class:`WriteError`
    naming ``path`` (a full disk as :class:`NoSpaceError`, naming the folder).
    """
    path = Path(path)
    try:
        fd, tmp = _create_temporary(path)
    except OSError as err:
        raise WriteError(err.errno, describe_write_error(err, path), str(path)) from err
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        _raise_write_error(err, tmp, path)
    _after_replace(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that takes a path; on leaving the block the
    file is fsynced and renamed over ``path``. The folder is created if missing; failures as
    :func:`atomic_write`'s."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
        os.close(fd)
    except OSError as err:
        raise WriteError(err.errno, describe_write_error(err, path), str(path)) from err
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        _raise_write_error(err, tmp, path)
    _after_replace(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files the writers here left anywhere under ``folder`` (a process killed
    while writing); call it only where no other process writes (e.g. under a run's lock). Returns them."""
    removed = []
    for candidate in Path(folder).rglob(".*.tmp"):
        if candidate.is_file() and _TEMP_NAME.match(candidate.name):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def _raise_write_error(err: BaseException, tmp: Path, path: Path) -> None:
    """Remove ``tmp`` and re-raise ``err``, an ``OSError`` as a :class:`WriteError` naming ``path``."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    full = no_space_error(err, path)
    if full is not None and full is not err:
        raise full from err
    if isinstance(err, OSError) and not isinstance(err, WriteError):
        raise WriteError(err.errno, describe_write_error(err, path), str(path)) from err
    raise err


def _after_replace(path: Path) -> None:
    """Persist the rename, then remove temporary files of ``path`` left by a process killed while writing."""
    with contextlib.suppress(OSError):
        _fsync(path.parent)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if _TEMP_NAME.match(stale.name):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new ``.<name>.<random>.tmp`` beside ``path``, with the permissions the umask gives new files
    (``tempfile.mkstemp`` would make it, and so the result, readable by its owner only)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
