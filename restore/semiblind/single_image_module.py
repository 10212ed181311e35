"""Single-image semi-blind deblurring as a Lightning run: the datamodule holding one (y, k̂, gt?) problem
and the module that solves it, one deep-residual-prior iteration per training step.

Tang et al., CVPR 2023 (deep residual prior); the per-step algorithm is
:meth:`restore.semiblind.solver.DeepResidualPrior.loss` (s-step, then the Adam step). With
``refine_kernel`` (default) k̂ is first refined (:func:`restore.semiblind.kernel_refinement.refine_kernel`).

    python train.py experiment=semiblind/drp data.image=blurry.png data.kernel=k.png [data.gt=gt.png]
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from restore.metrics.shift_aligned import image_quality
from restore.semiblind.api import check_inputs
from restore.semiblind.kernel_refinement import KernelRefinementConfig, refine_kernel
from restore.semiblind.kernels import as_kernel
from restore.semiblind.solver import DeepResidualPrior, DRPConfig
from restore.utils.image import to_tensor, write_image

__all__ = ["SingleImageDataModule", "SemiBlindDeblurModule"]

log = logging.getLogger(__name__)


class _Repeat(Dataset):
    """The same sample ``length`` times (an epoch of ``length`` steps)."""

    def __init__(self, sample: dict, length: int):
        self.sample, self.length = sample, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return self.sample


class SingleImageDataModule(L.LightningDataModule):
    """One blurry image, its (inaccurate) kernel and optionally the ground truth.

    Args:
        image: path (or array/tensor) of the blurry image y, gray or RGB.
        kernel: path (.png normalised to sum 1, .txt, .npy) or array of k̂.
        gt: optional ground truth, only for PSNR curves.
        steps_per_epoch: length of the repeated dataset (epochs are bookkeeping only).
    """

    def __init__(self, image: Any, kernel: Any, gt: Any = None, steps_per_epoch: int = 100, num_workers: int = 0):
        super().__init__()
        self.image_src, self.kernel_src, self.gt_src = image, kernel, gt
        self.steps_per_epoch = steps_per_epoch
        self.blurry: torch.Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.blurry is not None:
            return
        self.blurry = to_tensor(self.image_src)[0]
        self.kernel = as_kernel(self.kernel_src).float()
        self.gt = to_tensor(self.gt_src, channels=self.blurry.shape[1])[0] if self.gt_src is not None else None
        check_inputs(self.blurry, self.kernel, self.gt)
        self.name = Path(str(self.image_src)).stem if isinstance(self.image_src, (str, Path)) else "image"

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(_Repeat({"index": 0}, self.steps_per_epoch), batch_size=1)


class SemiBlindDeblurModule(L.LightningModule):
    """Deep residual prior as a LightningModule: each training step is one solver iteration.

    The problem (y, k̂, gt) comes from the datamodule (``setup``); at the end of fit it writes
    ``<output_dir>/restored.png``, ``residual.png`` (r mapped from [−0.25, 0.25] to [0, 1]),
    ``residual.pt`` (signed), ``kernel.png`` (the kernel used, scaled to its maximum) and ``kernel.npy``
    (its values), ``history.json`` and, with a ground truth, ``curves.png``.

    Args:
        output_dir: run folder (``${paths.output_dir}``).
        optimizer: ``_partial_`` optimizer (default Adam(lr=config.lr)) over both generators.
        seed: seeds the generators and their inputs.
        log_every: history / PSNR interval in steps.
        refine_kernel: refine k̂ before the iterations (no ground truth involved).
        refine: overrides of :class:`~restore.semiblind.kernel_refinement.KernelRefinementConfig`.
        **config: :class:`~restore.semiblind.solver.DRPConfig` fields (iterations is ignored:
            ``trainer.max_steps`` sets the length).
    """

    def __init__(self, output_dir: str = ".", optimizer: Callable | None = None, seed: int = 0, log_every: int = 25,
                 refine_kernel: bool = True, refine: dict | None = None, **config: Any):
        super().__init__()
        self.refine_kernel, self.refine = refine_kernel, dict(refine or {})
        self.output_dir = Path(output_dir)
        self.optimizer_factory = optimizer
        self.seed, self.log_every = seed, log_every
        self.cfg = DRPConfig(**{k: (list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v)
                                for k, v in config.items()})
        self.solver: DeepResidualPrior | None = None
        self.history: list[dict[str, float]] = []

    def setup(self, stage: str) -> None:
        if self.solver is not None:
            return
        dm = self.trainer.datamodule
        dm.setup(stage)
        self.gt = dm.gt
        self.name = dm.name
        kernel = dm.kernel
        if self.refine_kernel:
            kernel = refine_kernel(dm.blurry, kernel, KernelRefinementConfig(**self.refine)).kernel
        self.kernel = kernel.float().cpu()
        self.solver = DeepResidualPrior(dm.blurry, kernel, self.cfg, seed=self.seed)

    def configure_optimizers(self):
        factory = self.optimizer_factory or partial(torch.optim.Adam, lr=self.cfg.lr)
        return factory(self.solver.parameters_groups())

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, terms = self.solver.loss()
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=1)
        for k, v in terms.items():
            self.log(f"train/{k}", v, batch_size=1)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.solver.after_step()
        step = self.solver.steps
        if step % self.log_every == 0 or step == 1:
            rec = {"step": step, "loss": float(outputs["loss"])}
            if self.gt is not None:
                rec["psnr"] = _psnr(self.solver.estimate(), self.gt.to(self.device))
                self.log("train/psnr", rec["psnr"], prog_bar=True, batch_size=1)
            self.history.append(rec)

    def on_train_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        restored = self.solver.estimate()
        residual = self.solver.residual()
        write_image(restored, out / "restored.png")
        write_image((residual / 0.5 + 0.5).clamp(0, 1), out / "residual.png")
        torch.save(residual.cpu(), out / "residual.pt")
        np.save(out / "kernel.npy", self.kernel.numpy())
        write_image((self.kernel / self.kernel.max())[None], out / "kernel.png")
        final = {"steps": self.solver.steps}
        if self.gt is not None:
            final["psnr"] = _psnr(restored, self.gt.to(restored.device))
        (out / "history.json").write_text(json.dumps({"final": final, "history": self.history}, indent=1))
        if self.history:
            plot_curves(self.history, out / "curves.png")
        log.info("semi-blind DRP: %s → %s %s", self.name, out / "restored.png", final)


def _psnr(x: torch.Tensor, gt: torch.Tensor) -> float:
    return image_quality(x, gt)["psnr"]


def plot_curves(history: list[dict[str, float]], path: Path) -> Path:
    """Loss (log scale) and, if present, PSNR against the step (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    has_psnr = "psnr" in history[0]
    fig, axes = plt.subplots(1, 2 if has_psnr else 1, figsize=(9 if has_psnr else 4.5, 3.2), squeeze=False)
    axes[0, 0].semilogy(steps, [h["loss"] for h in history])
    axes[0, 0].set(xlabel="iteration", ylabel="loss", title="objective")
    if has_psnr:
        axes[0, 1].plot(steps, [h["psnr"] for h in history])
        axes[0, 1].set(xlabel="iteration", ylabel="PSNR (dB)", title="PSNR vs. ground truth (report only)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
