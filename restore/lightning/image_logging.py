"""Images to every configured experiment logger, each through its own image API, and as PNGs in the run folder.

Lightning has no logger-agnostic image call (``LightningModule.logger`` is only the first logger, and
``TensorBoardLogger.experiment.add_image``, ``MLFlowLogger.experiment.log_image`` and
``WandbLogger.log_image`` differ), so this small dispatcher is hand-written. Scalar-only loggers (CSV) are
skipped. Whatever the loggers, :func:`save_labelled_panels` writes the validation triplets as PNGs
(``<run folder>/images/val/<step>/<name>.png``); the restored test images come from ``eval.py save_images=true``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image, ImageDraw, ImageFont

from restore.utils.files import atomic_write

__all__ = ["log_images", "to_uint8_hwc", "labelled_panels", "save_labelled_panels", "TRIPLET_LABELS",
           "LABEL_STRIP_HEIGHT"]

#: What the three panels of a validation triplet show, left to right.
TRIPLET_LABELS = ("input", "output", "target")
#: Pixels of the strip above the panels that holds their labels (PIL's default font: 10–11 px, with a margin).
LABEL_STRIP_HEIGHT = 16

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


def labelled_panels(panels: Sequence[torch.Tensor], labels: Sequence[str]) -> Image.Image:
    """(C, H, W) images in [0, 1] of one size → one 8-bit PIL image: the panels side by side (``len(panels)`` × W
    wide), under a :data:`LABEL_STRIP_HEIGHT`-pixel black strip naming each in white.

    Drawn by hand with ``PIL.ImageDraw`` and its default font (no font file to fetch): ``torchvision``'s
    ``make_grid`` has no captions. A label wider than its panel starts at its left edge and is cut at its right.
    Gray panels give a gray image, any RGB panel an RGB one.
    """
    if len(panels) != len(labels):
        raise ValueError(f"{len(panels)} panels but {len(labels)} labels")
    if len({tuple(p.shape[-2:]) for p in panels}) != 1:
        raise ValueError(f"panels must share one size, got {[tuple(p.shape) for p in panels]}")
    arrays = [to_uint8_hwc(p) for p in panels]
    mode = "RGB" if any(a.ndim == 3 for a in arrays) else "L"
    height, width = arrays[0].shape[:2]
    sheet = Image.new(mode, (width * len(arrays), height + LABEL_STRIP_HEIGHT))
    font = ImageFont.load_default()
    for i, (array, label) in enumerate(zip(arrays, labels)):
        strip = Image.new(mode, (width, LABEL_STRIP_HEIGHT))  # drawn apart so a long label stops at its panel
        draw = ImageDraw.Draw(strip)
        if draw.textlength(label, font=font) <= width - 2:
            draw.text((width / 2, LABEL_STRIP_HEIGHT / 2), label, fill="white", font=font, anchor="mm")
        else:  # too wide: keep its start readable
            draw.text((1, LABEL_STRIP_HEIGHT / 2), label, fill="white", font=font, anchor="lm")
        sheet.paste(strip, (i * width, 0))
        sheet.paste(Image.fromarray(array).convert(mode), (i * width, LABEL_STRIP_HEIGHT))
    return sheet


@rank_zero_only
def save_labelled_panels(folder: str | Path, name: str, panels: Sequence[torch.Tensor],
                         labels: Sequence[str] = TRIPLET_LABELS) -> Path:
    """Write :func:`labelled_panels` as ``<folder>/<name>.png`` (``/`` in ``name`` makes sub-folders, odd characters
    become ``_``), atomically (:func:`restore.utils.files.atomic_write`), on rank zero only; returns the path."""
    path = Path(folder) / f"{_safe_path(name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = labelled_panels(panels, labels)
    with atomic_write(path) as f:
        sheet.save(f, format="PNG")
    return path


def _safe_path(tag: str) -> str:
    """A tag as a relative artifact path: ``/`` keeps its folders, anything odd becomes ``_``."""
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in tag.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "image"
