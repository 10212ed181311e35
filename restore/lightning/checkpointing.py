"""Checkpoints that survive a kill: atomic writes, weights digests, size limits, named read errors,
a save on Ctrl-C."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from restore.errors import CheckpointReadError
from restore.utils.files import atomic_path
from restore.weights_io import CKPT_DIGEST_KEY, check_checkpoint_archive, checkpoint_digest, verify_digest

__all__ = ["AtomicCheckpointIO", "CheckpointReadError", "InterruptCheckpoint"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` with crash-safe local writes, a weights digest checked on
    resume, size limits, and read errors that name the file.

    Lightning writes through an fsspec transaction whose temporary file lies in the system temp
    folder; committing it to another filesystem (tmpfs → disk) is a copy, so a run killed then
    leaves a truncated or 0-byte ``last.ckpt``. Here the checkpoint goes through
    :func:`restore.utils.files.atomic_path` (a hidden temporary file in the same folder, fsynced, then
    ``os.replace``-d over the target): the previous file stays whole until the new one is complete;
    temporary files of killed processes are removed by the next save of the same name.

    Every checkpoint stores ``weights_digest`` (:func:`restore.weights_io.checkpoint_digest`, over
    all its tensors); loading (``trainer.fit(ckpt_path=...)``) first size-checks the zip
    (:func:`restore.weights_io.check_checkpoint_archive`), then verifies the digest, so a damaged
    checkpoint is never resumed from. Remote paths (``s3://``…) are written as Lightning does.

    Wire it with ``Trainer(plugins=[AtomicCheckpointIO()])`` (``configs/trainer/default.yaml`` does).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        checkpoint = {**checkpoint, CKPT_DIGEST_KEY: checkpoint_digest(checkpoint)}
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(self, path, map_location: Optional[Callable] = lambda storage, loc: storage,
                        weights_only: Optional[bool] = None) -> dict[str, Any]:
        fs = get_filesystem(path)
        if fs.exists(path) and fs.size(path) == 0:
            raise CheckpointReadError(f"Checkpoint {path} is empty (0 bytes): it was never completely written "
                                      "(a run killed while saving?). Resume from another checkpoint.")
        if isinstance(fs, LocalFileSystem) and os.path.isfile(path):
            try:
                check_checkpoint_archive(path)
            except OSError as err:
                raise CheckpointReadError(str(err)) from None
        try:
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - torch raises EOFError, RuntimeError, UnpicklingError...
            raise CheckpointReadError(f"Cannot read checkpoint {path}: {_describe_read_error(err)}") from None
        verify_digest(checkpoint_digest(checkpoint), checkpoint.get(CKPT_DIGEST_KEY), path,
                      fix="resume from another checkpoint (e.g. best.ckpt, or one of an earlier run)")
        return checkpoint


def _describe_read_error(err: Exception) -> str:
    """torch's reason in one line, without its advice to load unsafely."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, EOFError):
        return "the file ends early (truncated, e.g. a run killed while saving)."
    if "weights_only" in str(err) or "Weights only load failed" in first:
        return ("it holds objects other than tensors and plain values, which are never unpickled here "
                "(not a checkpoint this toolkit wrote, or a corrupted one).")
    return f"{type(err).__name__}: {first} (truncated or not a PyTorch checkpoint)."


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

