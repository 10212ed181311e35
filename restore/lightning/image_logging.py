"""Images to every configured experiment logger, each through its own image API.

Lightning has no logger-agnostic image call (``LightningModule.logger`` is only the first logger, and
``TensorBoardLogger.experiment.add_image``, ``MLFlowLogger.experiment.log_image`` and
``WandbLogger.log_image`` differ), so this small dispatcher is hand-written. Scalar-only loggers (CSV) are
skipped: the images a run writes to disk come from ``eval.py save_images=true``.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, Mapping

import numpy as np
import torch
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

__all__ = ["log_images", "to_uint8_hwc"]

log = logging.getLogger(__name__)

_skipped: set[str] = set()  # logger classes already reported as taking no images


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1], C ∈ {1, 3} → (H, W, 3) or (H, W) uint8 (what MLflow and W&B store as PNG)."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"an image to log must be (C, H, W) with C = 1 or 3, got shape {tuple(image.shape)}")
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


@rank_zero_only
def log_images(loggers: Iterable[Logger], images: Mapping[str, torch.Tensor], step: int) -> None:
    """Log each ``tag → (C, H, W) image in [0, 1]`` of ``images`` at ``step`` to every logger that takes images.

    - TensorBoard: ``add_image(tag, image, step)`` (the IMAGES tab).
    - MLflow: an artifact ``images/<tag>/step_<step>.png`` of the logger's run.
    - Weights & Biases: ``log_image(tag, [image], step)`` (the run's media, ``files/media/images/`` offline).
    - others (CSV…): skipped, said once in the log.
    """
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for tag, image in images.items():
                logger.experiment.add_image(tag, image.detach().float().clamp(0, 1).cpu(), step)
        elif isinstance(logger, MLFlowLogger):
            for tag, image in images.items():
                path = f"images/{_safe_path(tag)}/step_{step:07d}.png"
                logger.experiment.log_image(logger.run_id, to_uint8_hwc(image), artifact_file=path)
        elif isinstance(logger, WandbLogger):
            for tag, image in images.items():
                logger.log_image(key=tag, images=[to_uint8_hwc(image)], step=step)
        elif type(logger).__name__ not in _skipped:
            _skipped.add(type(logger).__name__)
            log.debug("%s takes no images; %s not logged there", type(logger).__name__, ", ".join(images))


def _safe_path(tag: str) -> str:
    """A tag as a relative artifact path: ``/`` keeps its folders, anything odd becomes ``_``."""
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in tag.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "image"
