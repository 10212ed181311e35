"""The LightningModule that trains any restoration network of the toolkit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from lightning import LightningModule
from torch import nn

from restore.metrics import ImageQualityMetrics, check_lpips_weights
from restore.utils.image import write_image

__all__ = ["RestorationModule", "NonFiniteLossError", "batch_size_of"]


def batch_size_of(batch: dict) -> int:
    """Images in a restoration batch (for ``ThroughputMonitor(batch_size_fn=...)``)."""
    return int(batch["lq"].shape[0])


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; nothing from that step was applied or saved."""


class RestorationModule(LightningModule):
    """Trains ``net`` to map degraded ``lq`` to clean ``gt`` images.

    Batches are dicts ``{"lq", "gt", "task", "name"}`` (see :mod:`restore.data`). Validation and
    test report PSNR/SSIM of the output and of the input, overall and per task, under each
    protocol in ``metrics``; the first of them is logged without a suffix (``val/psnr``) and drives
    checkpoint selection.

    Args:
        net: the network, (B, C, H, W) → (B, C, H, W).
        loss: ``(pred, target) -> scalar``.
        optimizer: partial optimizer (Hydra ``_partial_: true``), called with the parameters.
        scheduler: partial ``(optimizer, total_steps) -> LRScheduler`` stepped every step, or None.
        metrics: protocol configs, e.g. ``[{"protocol": "rgb"}, {"protocol": "y", "crop_border": 4}]``.
        task_names: names of the task ids in batches; taken from the datamodule when None.
        log_images: how many validation triplets (input | output | target) go to TensorBoard.
        save_images_dir: when set, ``test`` writes each restored image there as ``<name>.png``.
        net_config: the network's Hydra config, stored in checkpoints so :func:`restore.load_model`
            rebuilds the network without the run's config.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        metrics: Sequence[dict] = ({"protocol": "rgb"},),
        task_names: Sequence[str] | None = None,
        log_images: int = 2,
        save_images_dir: str | None = None,
        net_config: dict | None = None,
    ) -> None:
        super().__init__()
        # partials and modules stay out of the hyper-parameters: checkpoints load with weights_only=True
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.metric_configs = [dict(m) for m in metrics]
        for cfg in self.metric_configs:
            if cfg.get("lpips"):
                check_lpips_weights(cfg["lpips"])  # at start-up, not at the first validation
        self.task_names = list(task_names) if task_names else None
        self.log_images = log_images
        self.save_images_dir = save_images_dir
        self.net_config = net_config
        self._metrics: nn.ModuleDict | None = None

    # -- metrics -----------------------------------------------------------------------------
    def _metric_suffix(self, i: int, cfg: dict) -> str:
        return "" if i == 0 else f"_{cfg['protocol']}{cfg.get('crop_border', 0) or ''}"

    def _build_metrics(self) -> None:
        """One :class:`ImageQualityMetrics` per (protocol, output/input, task or all)."""
        if self.task_names is None:
            dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
            self.task_names = list(getattr(dm, "task_names", None) or ["all"])
        groups = ["all"] + (self.task_names if len(self.task_names) > 1 else [])
        metrics = {}
        for i, cfg in enumerate(self.metric_configs):
            for which in ("out", "in"):
                for group in groups:
                    metrics[f"{i}/{which}/{group}"] = ImageQualityMetrics(**cfg)
        self._metrics = nn.ModuleDict(metrics).to(self.device)

    @property
    def protocols(self) -> list[str]:
        """The protocol of each metric group, in words (first one drives checkpointing)."""
        return [ImageQualityMetrics.describe(**cfg) for cfg in self.metric_configs]

    # -- steps -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_outputs(self, lq: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """What the loss reads: every output of a multi-output net (``net.multi_output``, e.g. one image per
        scale via ``net(lq, return_all=True)``), else the image. Metrics always use ``net(lq)``, the
        full-resolution image."""
        if getattr(self.net, "multi_output", False):
            return [p.float() for p in self.net(lq, return_all=True)]
        return self.net(lq).float()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.training_outputs(batch["lq"]), batch["gt"].float())
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"Loss is {loss.item()} at global step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}); stopped before applying it. The last checkpoint written is intact: "
                "resume with ckpt_path=<run>/checkpoints/last.ckpt, e.g. with a lower model.optimizer.lr "
                "or gradient clipping (trainer.gradient_clip_val).")
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["lq"].shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._reset_metrics()

    def on_test_epoch_start(self) -> None:
        self._reset_metrics()

    def _reset_metrics(self) -> None:
        if self._metrics is None:
            self._build_metrics()
        for m in self._metrics.values():
            m.reset()

    def _evaluate(self, batch: dict) -> torch.Tensor:
        pred = self.net(batch["lq"]).clamp(0, 1)
        tasks = batch.get("task")
        groups = ["all"] + (self.task_names if len(self.task_names) > 1 else [])
        for key, metric in self._metrics.items():
            _, which, group = key.split("/", 2)
            image = pred if which == "out" else batch["lq"]
            if group == "all":
                metric.update(image, batch["gt"])
            elif tasks is not None:
                sel = tasks == groups.index(group) - 1
                if sel.any():
                    metric.update(image[sel], batch["gt"][sel])
        return pred

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pred = self._evaluate(batch)
        if batch_idx < self.log_images:
            self._log_triplet(batch, pred, batch_idx)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        pred = self._evaluate(batch)
        if self.save_images_dir:
            for image, name in zip(pred, batch["name"]):
                write_image(image, Path(self.save_images_dir) / f"{name}.png")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        for key, metric in self._metrics.items():
            i, which, group = key.split("/", 2)
            if metric.count == 0 and not torch.distributed.is_initialized():
                continue
            suffix = self._metric_suffix(int(i), self.metric_configs[int(i)])
            for name, value in metric.compute().items():
                tag = f"{stage}/{'' if group == 'all' else group + '/'}{name}{'_input' if which == 'in' else ''}{suffix}"
                self.log(tag, value, prog_bar=(group == "all" and which == "out" and i == "0"), sync_dist=False)

    def _log_triplet(self, batch: dict, pred: torch.Tensor, batch_idx: int) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if not hasattr(experiment, "add_image"):
            return
        lq = batch["lq"][0].clamp(0, 1)
        triplet = torch.cat([lq, pred[0], batch["gt"][0]], dim=-1)  # input | output | target
        experiment.add_image(f"val/{batch['name'][0]}", triplet.float().cpu(), self.global_step)

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.net_config is not None:
            checkpoint["net_config"] = self.net_config
