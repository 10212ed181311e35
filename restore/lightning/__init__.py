"""Lightning modules, callbacks, checkpoint I/O and schedules."""

from restore.lightning.checkpointing import AtomicCheckpointIO, CheckpointReadError, InterruptCheckpoint
from restore.lightning.module import (DivergenceError, NonFiniteLossError, NonFiniteOutputError, RestorationModule,
                                      batch_size_of)
from restore.lightning.schedulers import warmup_cosine

__all__ = ["RestorationModule", "NonFiniteLossError", "DivergenceError", "NonFiniteOutputError", "warmup_cosine",
           "batch_size_of", "AtomicCheckpointIO", "CheckpointReadError", "InterruptCheckpoint"]
