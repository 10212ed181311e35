"""Checkpoints that survive a kill: atomic writes, named read errors, a save on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info

__all__ = ["AtomicCheckpointIO", "CheckpointReadError", "InterruptCheckpoint"]


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be read (empty, truncated or not a checkpoint); names the file."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with crash-safe local writes and read errors that name the file.

    Lightning writes through an fsspec transaction whose temporary file lies in the system temp
    folder; committing it to another filesystem (tmpfs → disk) is a copy, so a run killed then
    leaves a truncated or 0-byte ``last.ckpt``. Here the checkpoint goes to a hidden temporary file
    in the same folder, is flushed and fsynced, then ``os.replace``-d over the target (atomic on
    POSIX): the previous file stays whole until the new one is complete. A failed write removes its
    temporary file; one left by a killed process is removed by the next save of the same name.
    Remote paths (``s3://``…) keep Lightning's behaviour.

    Wire it with ``Trainer(plugins=[AtomicCheckpointIO()])`` (``configs/trainer/default.yaml`` does).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed while saving
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def load_checkpoint(self, path, map_location: Optional[Callable] = lambda storage, loc: storage,
                        weights_only: Optional[bool] = None) -> dict[str, Any]:
        fs = get_filesystem(path)
        if fs.exists(path) and fs.size(path) == 0:
            raise CheckpointReadError(f"Checkpoint {path} is empty (0 bytes): it was never completely written "
                                      "(a run killed while saving?). Resume from another checkpoint.")
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - torch raises EOFError, RuntimeError, UnpicklingError...
            raise CheckpointReadError(f"Cannot read checkpoint {path}: {_describe_read_error(err)}") from None


def _describe_read_error(err: Exception) -> str:
    """torch's reason in one line, without its advice to load unsafely."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, EOFError):
        return "the file ends early (truncated, e.g. a run killed while saving)."
    if "weights_only" in str(err) or "Weights only load failed" in first:
        return ("it holds objects other than tensors and plain values, which are never unpickled here "
                "(not a checkpoint this toolkit wrote, or a corrupted one).")
    return f"{type(err).__name__}: {first} (truncated or not a PyTorch checkpoint)."


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class InterruptCheckpoint(Checkpoint):
    """Save ``<dirpath>/<filename>.ckpt`` when fitting stops on Ctrl-C (``KeyboardInterrupt``) only.

    Lightning's ``OnExceptionCheckpoint`` saves on every exception and deletes its file at teardown;
    a run stopped for a NaN or diverging loss must instead keep its last good checkpoint, so other
    exceptions save nothing here. ``dirpath`` defaults to the ``ModelCheckpoint``'s folder; the
    default name ``last`` makes ``ckpt_path=<run>/checkpoints/last.ckpt`` resume from the interrupted step.
    """

    def __init__(self, dirpath: str | os.PathLike | None = None, filename: str = "last") -> None:
        super().__init__()
        if not filename:
            raise ValueError("InterruptCheckpoint: filename cannot be empty")
        self.dirpath, self.filename = dirpath, filename

    def ckpt_path(self, trainer: Trainer) -> Path | None:
        dirpath = self.dirpath or getattr(trainer.checkpoint_callback, "dirpath", None)
        return Path(dirpath) / f"{self.filename}.ckpt" if dirpath else None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != "fit":
            return
        path = self.ckpt_path(trainer)
        if path is None:
            rank_zero_info("Interrupted: no checkpoint folder is configured, nothing saved.")
            return
        trainer.save_checkpoint(path)
        rank_zero_info(f"Interrupted at step {trainer.global_step}: saved {path}; resume with ckpt_path={path}")

