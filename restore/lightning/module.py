"""The LightningModule that trains any restoration network of the toolkit."""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import math
import numbers
import statistics
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from lightning import LightningModule
from torch import nn

from restore.errors import NonFiniteOutputError
from restore.lightning.image_logging import log_images
from restore.metrics import ImageQualityMetrics, check_lpips_weights
from restore.utils.image import write_image

__all__ = ["RestorationModule", "NonFiniteLossError", "DivergenceError", "NonFiniteOutputError", "batch_size_of",
           "SIDES"]

log = logging.getLogger(__name__)

SIDES = ("output", "input")  # what is measured against the target: the network's output, the degraded input


def batch_size_of(batch: dict) -> int:
    """Images in a restoration batch (for ``ThroughputMonitor(batch_size_fn=...)``)."""
    return int(batch["lq"].shape[0])


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; nothing from that step was applied or saved."""


class DivergenceError(NonFiniteLossError):
    """The training loss jumped far above its recent median (``divergence_factor``); stopped like a NaN loss."""


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
        optimizer: partial optimizer (Hydra ``_partial_: true``), called with the parameters. Its
            numeric hyper-parameters are checked here, named by their config key (``model.optimizer.lr``).
        scheduler: partial ``(optimizer, total_steps) -> LRScheduler`` stepped every step, or None.
        metrics: protocol configs, e.g. ``[{"protocol": "rgb"}, {"protocol": "y", "crop_border": 4}]``.
        task_names: names of the task ids in batches; taken from the datamodule when None.
        log_images: how many validation triplets (input | output | target) go to the loggers that take images
            (TensorBoard, MLflow, W&B: :func:`restore.lightning.image_logging.log_images`).
        save_images_dir: when set, ``test`` writes each restored image there as ``<name>.png``.
        net_config: the network's Hydra config, stored in checkpoints so :func:`restore.load_model`
            rebuilds the network without the run's config.
        divergence_factor: stop (:class:`DivergenceError`) when a training loss exceeds this many
            times the median of the last ``divergence_window`` losses, once ``divergence_warmup`` of
            them are known; None turns the check off. A NaN/Inf loss always stops.
        divergence_window: how many recent losses the median covers.
        divergence_warmup: losses seen before the check starts (after a start or a resume).
        weights_path: the file the weights came from, named when they give non-finite outputs.

    On resume (``trainer.fit(..., ckpt_path=...)``) the configured optimizer and scheduler
    hyper-parameters win over the checkpoint's where they differ (e.g. a lower
    ``model.optimizer.lr`` after a NaN); each difference is logged and kept in :attr:`resume_overrides`.
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
        divergence_factor: float | None = 100.0,
        divergence_window: int = 100,
        divergence_warmup: int = 100,
        weights_path: str | None = None,
    ) -> None:
        super().__init__()
        # partials and modules stay out of the hyper-parameters: checkpoints load with weights_only=True
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"], logger=False)
        check_hyperparameters(optimizer, f"{self.config_key}.optimizer")
        if scheduler is not None:
            check_hyperparameters(scheduler, f"{self.config_key}.scheduler")
        _dry_run(optimizer, scheduler, self.config_key)  # torch's own checks (lr < 0, unknown keys), named
        if divergence_factor is not None and not (_is_number(divergence_factor) and divergence_factor > 1):
            raise ValueError(f"{self.config_key}.divergence_factor must be a number > 1 or null, "
                             f"got {divergence_factor!r}")
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
        self.divergence_factor = divergence_factor
        self.divergence_warmup = max(1, int(divergence_warmup))
        self._recent_losses: deque[float] = deque(maxlen=max(1, int(divergence_window)))
        self.weights_path = weights_path
        # stage → {key: ImageQualityMetrics}, built on the module's device at the stage's first epoch; a plain
        # dict, not a submodule, so metric modules (LPIPS' network) stay out of checkpoints and strict resumes
        self.stage_metrics: dict[str, nn.ModuleDict] = {}
        # stage → one (task, task id or None for all, side, protocol index) per collection, in order
        self._metric_specs: dict[str, list[tuple[str, int | None, str, int]]] = {}
        #: stage → task → metric → {"output": value, "input": value}, from the last val/test epoch
        self.results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
        #: (config key, checkpoint value, configured value) applied when resuming
        self.resume_overrides: list[tuple[str, Any, Any]] = []
        self._configured_groups: list[dict] = []
        self._configured_scheduler: dict | None = None

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
        self._stop_if_diverged(loss, batch_idx)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["lq"].shape[0])
        return loss

    def _stop_if_diverged(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Raise before the step is applied when the loss is NaN/Inf or ``divergence_factor`` × its recent median.

        The decision is shared by all DDP ranks, so they stop together.
        """
        value = float(loss.detach())
        median = statistics.median(self._recent_losses) if len(self._recent_losses) >= self.divergence_warmup \
            else None
        diverged = (self.divergence_factor is not None and median is not None and math.isfinite(value)
                    and value > self.divergence_factor * median)
        bad = not math.isfinite(value) or diverged
        if self._trainer is not None:
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            self._recent_losses.append(value)
            return
        where = f"global step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        if diverged:
            what, error = (f"Loss {value:.4g} is more than {self.divergence_factor:g}× the median of the last "
                           f"{len(self._recent_losses)} losses ({median:.4g}) at {where}: the training diverges. "
                           f"Stopped before applying it (the check: {self.config_key}.divergence_factor)."), \
                DivergenceError
        else:
            what, error = f"Loss is {value} at {where} (on this or another rank); stopped before applying it.", \
                NonFiniteLossError
        raise error(f"{what} {self._resume_advice()}")

    def _resume_advice(self) -> str:
        """What to resume from, naming a checkpoint only if one is on disk."""
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self._trainer is not None and \
            self.trainer.optimizers else None
        fix = (f"a lower {self.config_key}.optimizer.lr" + (f" (the learning rate is now {float(lr):.3g})"
                                                            if lr is not None else "")
               + " or gradient clipping (trainer.gradient_clip_val)")
        ckpt, dirs = self._last_checkpoint()
        if ckpt is not None:
            return (f"The last checkpoint written, {ckpt}, is from before this step: resume with "
                    f"ckpt_path={ckpt} and {fix}; the configured optimizer and scheduler values override the "
                    "checkpoint's on resume.")
        where = f" (checkpoints go to {', '.join(dirs)})" if dirs else " (no checkpoint callback is configured)"
        return f"No checkpoint has been written yet{where}: start again with {fix}."

    def _last_checkpoint(self) -> tuple[Path | None, list[str]]:
        """The newest checkpoint file on disk among the trainer's checkpoint callbacks, and their folders."""
        found, dirs = [], []
        for cb in getattr(self.trainer, "checkpoint_callbacks", []) if self._trainer is not None else []:
            dirpath = getattr(cb, "dirpath", None)
            if dirpath:
                dirs.append(str(dirpath))
            for path in (getattr(cb, "last_model_path", ""), Path(dirpath) / "last.ckpt" if dirpath else "",
                         getattr(cb, "best_model_path", "")):
                if path and Path(path).is_file() and Path(path).stat().st_size > 0:
                    found.append(Path(path))
        return (max(found, key=lambda p: p.stat().st_mtime) if found else None), dirs

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
        """input | output | target of the batch's first image, to every logger that takes images."""
        if self._trainer is None or not self.loggers:
            return
        lq = batch["lq"][0].clamp(0, 1)
        triplet = torch.cat([lq, pred[0], batch["gt"][0]], dim=-1)
        log_images(self.loggers, {f"val/{batch['name'][0]}": triplet}, self.global_step)

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        # the configured values, before a scheduler scales lr or Lightning restores a checkpoint's
        self._configured_groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
                                   for g in optimizer.param_groups]
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer, total_steps=self._total_steps())
        self._configured_scheduler = copy.deepcopy(scheduler.state_dict())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _total_steps(self) -> int:
        return int(self.trainer.estimated_stepping_batches)

    def on_train_start(self) -> None:
        self._recent_losses.clear()
        if self.trainer.ckpt_path is not None:
            self._apply_configured_hyperparameters()

    def _apply_configured_hyperparameters(self) -> None:
        """After Lightning restored the checkpoint's optimizer and scheduler: where the configured
        hyper-parameters differ from the checkpoint's, the configured ones win, logged.

        The learning rate is compared at its base (the scheduler's ``initial_lr``); when it or a
        scheduler hyper-parameter differs (``min_lr``, ``warmup_steps``, the total steps after a
        change of ``trainer.max_steps``), the configured schedule is replayed to the resumed step,
        so the run continues exactly as if it had used the new values from the start.
        """
        if not self.trainer.optimizers or not self._configured_groups:
            return
        optimizer = self.trainer.optimizers[0]
        configs = self.trainer.lr_scheduler_configs
        scheduler = configs[0].scheduler if configs else None
        changes: list[tuple[str, Any, Any]] = []
        for group, configured in zip(optimizer.param_groups, self._configured_groups):
            for key, value in configured.items():
                if key in ("lr", "initial_lr") or key not in group or _same(group[key], value):
                    continue
                changes.append((f"{self.config_key}.optimizer.{key}", group[key], value))
                group[key] = copy.deepcopy(value)
            restored_lr = group.get("initial_lr", group["lr"]) if scheduler is not None else group["lr"]
            if not _same(restored_lr, configured["lr"]):
                changes.append((f"{self.config_key}.optimizer.lr", restored_lr, configured["lr"]))
                if scheduler is None:
                    group["lr"] = configured["lr"]
        if scheduler is not None and self._configured_scheduler is not None:
            before, after = _schedule_hyperparameters(scheduler.state_dict()), \
                _schedule_hyperparameters(self._configured_scheduler)
            changes += [(f"{self.config_key}.scheduler ({k})", before[k], after.get(k)) for k in before
                        if before[k] != after.get(k)]
            if changes:
                self._replay_schedule(optimizer, scheduler)
        if changes and self.trainer.is_global_zero:
            log.warning("Resuming from %s with the configured values where they differ from the checkpoint's: %s; "
                        "learning rate now %.4g at step %d", self.trainer.ckpt_path,
                        "; ".join(f"{k}: {old} → {new}" for k, old, new in changes),
                        float(optimizer.param_groups[0]["lr"]), self.global_step)
        self.resume_overrides = changes

    def _replay_schedule(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Set ``scheduler`` (and the optimizer's lr) to where the configured schedule is at the resumed step."""
        dummy = self.optimizer_factory(params=[{"params": [nn.Parameter(torch.zeros(1))]}
                                               for _ in optimizer.param_groups])
        fresh = self.scheduler_factory(optimizer=dummy, total_steps=self._total_steps())
        for _ in range(scheduler.last_epoch - fresh.last_epoch):
            dummy.step()  # no gradients: a no-op that keeps torch's step-order check quiet
            fresh.step()
        scheduler.load_state_dict(fresh.state_dict())
        for group, replayed in zip(optimizer.param_groups, dummy.param_groups):
            group["lr"], group["initial_lr"] = replayed["lr"], replayed["initial_lr"]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.net_config is not None:
            checkpoint["net_config"] = self.net_config


# -- hyper-parameter checks ------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_hyperparameters(factory: Callable, key: str) -> None:
    """Numbers where the target's signature defaults to a number (tuples of them likewise), bools where
    it defaults to a bool: a bad value raises ``ValueError`` naming ``<key>.<argument>``.

    ``factory`` is a ``functools.partial`` (Hydra ``_partial_: true``); other callables are not checked.
    """
    if not isinstance(factory, functools.partial):
        return
    try:
        parameters = inspect.signature(factory.func).parameters
    except (TypeError, ValueError):
        return
    for name, value in factory.keywords.items():
        default = parameters[name].default if name in parameters else inspect.Parameter.empty
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), "true or false"
        elif _is_number(default):
            ok, expected = _is_number(value), "a number"
        elif isinstance(default, tuple) and default and all(_is_number(d) for d in default):
            ok = isinstance(value, (list, tuple)) and len(value) == len(default) and all(map(_is_number, value))
            expected = f"a list of {len(default)} numbers"
        else:
            continue
        if not ok:
            raise ValueError(f"{key}.{name} must be {expected}, got {value!r} ({type(value).__name__})")


def _dry_run(optimizer: Callable, scheduler: Callable | None, key: str) -> None:
    """Build the optimizer (and scheduler) on a dummy parameter, so torch's own checks fail at start-up, named."""
    try:
        dummy = optimizer(params=[nn.Parameter(torch.zeros(1))])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{key}.optimizer is invalid: {err}") from err
    if scheduler is not None:
        try:
            scheduler(optimizer=dummy, total_steps=1000)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{key}.scheduler is invalid: {err}") from err


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = float(a), float(b)
    if _is_number(a) and _is_number(b):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


_SCHEDULE_PROGRESS = {"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial",
                      "base_lrs", "verbose", "_schedulers"}


def _schedule_hyperparameters(state: dict, prefix: str = "") -> dict[str, Any]:
    """The hyper-parameters in an LR scheduler's ``state_dict`` (progress counters and lrs left out),
    flattened over the sub-schedulers of a ``SequentialLR``/``ChainedScheduler``."""
    out = {f"{prefix}{k}": v for k, v in state.items() if k not in _SCHEDULE_PROGRESS}
    for i, sub in enumerate(state.get("_schedulers") or []):
        if isinstance(sub, dict):
            out.update(_schedule_hyperparameters(sub, f"{prefix}{i}."))
    return out
