"""Lightning modules, callbacks and schedules."""

from restore.lightning.baryir_module import BaryIRModule
from restore.lightning.module import NonFiniteLossError, RestorationModule, batch_size_of
from restore.lightning.schedulers import step_decay, warmup_cosine

__all__ = ["RestorationModule", "BaryIRModule", "NonFiniteLossError", "warmup_cosine", "step_decay", "batch_size_of"]
