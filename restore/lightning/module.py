"""The LightningModule that trains any restoration network of the toolkit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from lightning import LightningModule
from torch import nn

from restore.errors import DivergenceError, NonFiniteLossError, NonFiniteOutputError
from restore.lightning.callbacks import warn_if_unguarded
from restore.lightning.hyperparameters import OptimizerSpec
from restore.lightning.image_logging import log_images, save_labelled_panels
from restore.metrics import ImageQualityMetrics, check_lpips_weights
from restore.utils.image import write_image

# the training-loss errors live in restore.errors; importable from here as before
__all__ = ["RestorationModule", "NonFiniteLossError", "DivergenceError", "NonFiniteOutputError", "batch_size_of",
           "SIDES"]

SIDES = ("output", "input")  # what is measured against the target: the network's output, the degraded input

# arguments that moved to the DivergenceGuard callback (configs/callbacks/divergence_guard.yaml)
MOVED_TO_CALLBACKS = {"divergence_factor": "callbacks.divergence_guard.factor",
                      "divergence_window": "callbacks.divergence_guard.window",
                      "divergence_warmup": None}


def batch_size_of(batch: dict) -> int:
    """Images in a restoration batch (for ``ThroughputMonitor(batch_size_fn=...)``)."""
    return int(batch["lq"].shape[0])




class RestorationModule(LightningModule):
    """Trains ``net`` to map degraded ``lq`` to clean ``gt`` images.

    Batches are dicts ``{"lq", "gt", "task", "name"}`` (see :mod:`restore.data`). Validation and
    test report PSNR/SSIM of the output and of the input, overall and per task, under each
    protocol in ``metrics``; the first of them is logged without a suffix (``val/psnr``) and drives
    checkpoint selection. Each (protocol, output/input, task) is an :class:`ImageQualityMetrics`
    collection whose prefix/postfix give the logged names (``val/denoise/psnr_input_y4``); the
    values of the last epoch are also kept, structured, in :attr:`results`.

    Args:
        net: the network, (B, C, H, W) → (B, C, H, W).
        loss: ``(pred, target) -> scalar``.
        optimizer: partial optimizer (Hydra ``_partial_: true``), called with the parameters; checked at
            start-up, named by its config key (``model.optimizer.lr``): :class:`OptimizerSpec`.
        scheduler: partial ``(optimizer, total_steps) -> LRScheduler`` stepped every step, or None.
        metrics: protocol configs, e.g. ``[{"protocol": "rgb"}, {"protocol": "y", "crop_border": 4}]``.
        task_names: names of the task ids in batches; taken from the datamodule when None.
        log_images: how many validation triplets (input | output | target) go to the loggers that take images
            (TensorBoard, MLflow, W&B: :func:`restore.lightning.image_logging.log_images`) and, whatever the
            loggers, to ``<trainer.default_root_dir>/images/val/<step>/<name>.png`` (the run folder under
            ``train.py``; labelled panels, :func:`restore.lightning.image_logging.save_labelled_panels`).
        save_images_dir: when set, ``test`` writes each restored image there as ``<name>.png``.
        net_config: the network's Hydra config, stored in checkpoints so :func:`restore.load_model`
            rebuilds the network without the run's config.
        weights_path: the file the weights came from, named when they give non-finite outputs.

    The training guards are callbacks (:mod:`restore.lightning.callbacks`, listed in
    ``configs/callbacks/default.yaml``): ``DivergenceGuard`` stops on a NaN or diverging loss and
    ``ResumeOverrides`` makes the configured optimizer and scheduler values win on resume; both read
    :attr:`optimizer_specs`.
    """

    config_key = "model"  # where this module's arguments live in the Hydra config, to name keys in errors

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
        weights_path: str | None = None,
        **moved: Any,
    ) -> None:
        super().__init__()
        refuse_moved_arguments(moved, self.config_key, type(self).__name__)
        # partials and modules stay out of the hyper-parameters: checkpoints load with weights_only=True
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"], logger=False)
        #: one per optimizer of configure_optimizers, in order (read by the guard callbacks)
        self.optimizer_specs = [OptimizerSpec(optimizer, scheduler, f"{self.config_key}.optimizer",
                                              f"{self.config_key}.scheduler")]
        self.net = net
        self.loss = loss
        self.metric_configs = [dict(m) for m in metrics]
        for cfg in self.metric_configs:
            if cfg.get("lpips"):
                check_lpips_weights(cfg["lpips"])  # at start-up, not at the first validation
        self.task_names = list(task_names) if task_names else None
        self.log_images = log_images
        self.save_images_dir = save_images_dir
        self.net_config = net_config
        #: ``{"name": <data config name>}``, set by train.py: stored in checkpoints so eval.py tests on the
        #: data the network was trained with (:func:`restore.checkpoint.training_record`)
        self.data_config: dict | None = None
        self.weights_path = weights_path
        # stage → {key: ImageQualityMetrics}, built on the module's device at the stage's first epoch; a plain
        # dict, not a submodule, so metric modules (LPIPS' network) stay out of checkpoints and strict resumes
        self.stage_metrics: dict[str, nn.ModuleDict] = {}
        # stage → one (task, task id or None for all, side, protocol index) per collection, in order
        self._metric_specs: dict[str, list[tuple[str, int | None, str, int]]] = {}
        #: stage → task → metric → {"output": value, "input": value}, from the last val/test epoch
        self.results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}

    # -- metrics -----------------------------------------------------------------------------
    def metric_suffix(self, protocol: int) -> str:
        """``""`` for the first protocol, ``_<protocol><crop>`` (``_y4``) for the others."""
        cfg = self.metric_configs[protocol]
        return "" if protocol == 0 else f"_{cfg['protocol']}{cfg.get('crop_border', 0) or ''}"

    def _build_metrics(self, stage: str) -> None:
        """One :class:`ImageQualityMetrics` per (protocol, output/input, task or all)."""
        if self.task_names is None:
            dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
            self.task_names = list(getattr(dm, "task_names", None) or ["all"])
        tasks = [("all", None)] + (list(zip(self.task_names, range(len(self.task_names))))
                                   if len(self.task_names) > 1 else [])
        metrics, specs = {}, []
        for i, cfg in enumerate(self.metric_configs):
            for side in SIDES:
                for j, (task, task_id) in enumerate(tasks):
                    prefix = f"{stage}/" if task_id is None else f"{stage}/{task}/"
                    postfix = ("_input" if side == "input" else "") + self.metric_suffix(i)
                    metrics[f"p{i}_{side}_t{j}"] = ImageQualityMetrics(
                        **cfg, prefix=prefix, postfix=postfix)
                    specs.append((task, task_id, side, i))
        self.stage_metrics[stage] = nn.ModuleDict(metrics).to(self.device)
        self._metric_specs[stage] = specs

    def _stage_collections(self, stage: str):
        return zip(self._metric_specs[stage], self.stage_metrics[stage].values())

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
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["lq"].shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._reset_metrics("val")

    def on_test_epoch_start(self) -> None:
        self._reset_metrics("test")

    def _reset_metrics(self, stage: str) -> None:
        if stage not in self.stage_metrics:
            self._build_metrics(stage)
        for m in self.stage_metrics[stage].values():
            m.reset()

    def _evaluate(self, batch: dict, stage: str) -> torch.Tensor:
        pred = self.net(batch["lq"])
        self._check_finite(pred, batch)
        pred = pred.clamp(0, 1)
        tasks = batch.get("task")
        for (_, task_id, side, _), metric in self._stage_collections(stage):
            image = pred if side == "output" else batch["lq"]
            if task_id is None:
                metric.update(image, batch["gt"])
            elif tasks is not None:
                sel = tasks == task_id
                if sel.any():
                    metric.update(image[sel], batch["gt"][sel])
        return pred

    def _check_finite(self, pred: torch.Tensor, batch: dict) -> None:
        finite = torch.isfinite(pred.detach()).flatten(1).all(dim=1)
        if bool(finite.all()):
            return
        names = [str(n) for n, ok in zip(batch.get("name", range(len(finite))), finite.tolist()) if not ok]
        source = self.weights_path or (getattr(self.trainer, "ckpt_path", None) if self._trainer is not None
                                       else None)
        raise NonFiniteOutputError(
            f"The network's output for {', '.join(names)} has NaN/Inf pixels"
            + (f" (weights from {source})" if source else "")
            + ": the weights are corrupted or the network overflows; no metric is reported.")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pred = self._evaluate(batch, "val")
        if batch_idx < self.log_images:
            self._log_triplet(batch, pred, batch_idx)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        pred = self._evaluate(batch, "test")
        if self.save_images_dir:
            for image, name in zip(pred, batch["name"]):
                write_image(image, Path(self.save_images_dir) / f"{name}.png")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        """``log_dict`` each collection (values already synced across ranks by torchmetrics); keep :attr:`results`."""
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        results: dict[str, dict[str, dict[str, float]]] = {}
        for (task, task_id, side, i), metric in self._stage_collections(stage):
            if metric.count == 0 and not distributed:  # a task absent from this set (every rank must compute)
                continue
            values = metric.compute()
            if metric.images_seen == 0:
                continue
            main = task_id is None and side == "output" and i == 0
            self.log_dict(values, prog_bar=main, sync_dist=False)
            for name in metric.names:
                entry = results.setdefault(task, {}).setdefault(name + self.metric_suffix(i), {})
                entry[side] = float(values[metric.tag(name)])
        self.results[stage] = results

    def _log_triplet(self, batch: dict, pred: torch.Tensor, batch_idx: int) -> None:
        """input | output | target of the batch's first image, to every logger that takes images and as a PNG in
        the run folder (not during the sanity check: a resumed run would validate its resumed step twice)."""
        if self._trainer is None:
            return
        panels = (batch["lq"][0].clamp(0, 1), pred[0], batch["gt"][0])
        name = str(batch["name"][0])
        if self.loggers:
            log_images(self.loggers, {f"val/{name}": torch.cat(panels, dim=-1)}, self.global_step)
        if not self.trainer.sanity_checking:
            save_labelled_panels(Path(self.trainer.default_root_dir) / "images" / "val" / str(self.global_step),
                                 name, panels)

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        optimizer, scheduler = self.optimizer_specs[0].build([p for p in self.parameters() if p.requires_grad],
                                                             total_steps=int(self.trainer.estimated_stepping_batches))
        if scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_fit_start(self) -> None:
        warn_if_unguarded(self.trainer)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.net_config is not None:
            checkpoint["net_config"] = self.net_config
        if self.data_config is not None:
            checkpoint["data_config"] = self.data_config


def refuse_moved_arguments(arguments: dict, key: str, owner: str) -> None:
    """A ``TypeError`` for keyword arguments the module does not take, naming where moved ones went."""
    if not arguments:
        return
    moved = [name for name in arguments if name in MOVED_TO_CALLBACKS]
    if not moved:
        raise TypeError(f"{owner}.__init__() got unexpected keyword arguments {sorted(arguments)}")
    where = "; ".join(f"{key}.{name} → {MOVED_TO_CALLBACKS[name]}" if MOVED_TO_CALLBACKS[name] else
                      f"{key}.{name} is gone (the guard is armed from the first losses)" for name in moved)
    raise TypeError(f"The divergence check is the DivergenceGuard callback now (configs/callbacks/divergence_guard"
                    f".yaml): {where}. Remove {', '.join(f'{key}.{n}' for n in moved)} from the model config.")
