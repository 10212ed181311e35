"""Lightning modules, callbacks and schedules."""

from restore.lightning.kernel_images import KernelImages
from restore.lightning.module import NonFiniteLossError, RestorationModule, batch_size_of
from restore.lightning.schedulers import warmup_cosine

__all__ = ["RestorationModule", "NonFiniteLossError", "warmup_cosine", "batch_size_of", "KernelImages"]
