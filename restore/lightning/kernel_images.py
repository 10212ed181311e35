"""Looking inside a kernel-estimating network: its estimated blur kernels as images.

For networks with ``estimate_kernels(x) -> [(B, C, k, k) in [0, 1], …]`` (one entry per scale, e.g.
:class:`restore.models.deeprft.DeepRFTNet`): each scale's per-channel kernels |irfft2(K)| (centred) are tiled
into one grid (``torchvision.utils.make_grid``), logged next to the validation triplets to every logger that
takes images (``val_kernels/<name>/scale<s>``; :func:`restore.lightning.image_logging.log_images`), and written
beside the restored images at test time
(``<save_images_dir>/<name>_kernels_scale<s>.png``, what ``eval.py save_images=true`` produces).
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer
from torchvision.utils import make_grid

from restore.lightning.image_logging import log_images
from restore.utils.image import write_image

__all__ = ["KernelImages", "kernel_grid"]


def kernel_grid(kernels: torch.Tensor, nrow: int = 8, upscale: int = 2) -> torch.Tensor:
    """(C, k, k) kernels in [0, 1] → one (1, H, W) gray grid, each kernel enlarged ``upscale``× (nearest)."""
    k = kernels[:, None].float()
    if upscale > 1:
        k = torch.nn.functional.interpolate(k, scale_factor=upscale, mode="nearest")
    return make_grid(k, nrow=nrow, padding=2, pad_value=1.0)[:1]


class KernelImages(Callback):
    """Log / save the estimated kernels of the first ``num_images`` validation images and of every test image.

    Args:
        num_images: validation images whose kernels go to the logger (the module's ``log_images`` triplets).
        crop: side of the centred kernel window.
    """

    def __init__(self, num_images: int = 2, crop: int = 65) -> None:
        self.num_images = num_images
        self.crop = crop

    def _kernels(self, pl_module: LightningModule, lq: torch.Tensor) -> list[torch.Tensor]:
        net = pl_module.net
        if not hasattr(net, "estimate_kernels"):
            return []
        return [k.cpu() for k in net.estimate_kernels(lq, crop=self.crop)]

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx >= self.num_images or not trainer.loggers:
            return
        grids = {f"val_kernels/{batch['name'][0]}/scale{s}": kernel_grid(kernels[0])
                 for s, kernels in enumerate(self._kernels(pl_module, batch["lq"][:1]))}
        if grids:
            log_images(trainer.loggers, grids, trainer.global_step)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        folder = getattr(pl_module, "save_images_dir", None)
        if not folder:
            return
        for s, kernels in enumerate(self._kernels(pl_module, batch["lq"])):
            for k, name in zip(kernels, batch["name"]):
                write_image(kernel_grid(k), Path(folder) / f"{name}_kernels_scale{s}.png")
