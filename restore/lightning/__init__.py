"""Lightning modules, callbacks (training guards, checkpoints, kernel images, console), checkpoint I/O, schedules and
image logging."""

from restore.errors import DivergenceError, NonFiniteLossError
from restore.lightning.baryir_module import BaryIRModule
from restore.lightning.callbacks import DivergenceGuard, ResumeOverrides
from restore.lightning.checkpointing import AtomicCheckpointIO, CheckpointReadError, InterruptCheckpoint
from restore.lightning.console import ModelSummary, StepProgressBar
from restore.lightning.hyperparameters import OptimizerSpec
from restore.lightning.image_logging import log_images
from restore.lightning.kernel_images import KernelImages
from restore.lightning.module import NonFiniteOutputError, RestorationModule, batch_size_of
from restore.lightning.schedulers import step_decay, warmup_cosine

__all__ = ["RestorationModule", "BaryIRModule", "NonFiniteLossError", "DivergenceError", "NonFiniteOutputError",
           "warmup_cosine", "step_decay", "batch_size_of", "AtomicCheckpointIO", "CheckpointReadError",
           "InterruptCheckpoint", "KernelImages", "log_images", "DivergenceGuard", "ResumeOverrides", "OptimizerSpec",
           "StepProgressBar", "ModelSummary"]
