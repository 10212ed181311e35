"""Training guards as Lightning callbacks, so that every module gets them (automatic and manual optimisation).

- :class:`DivergenceGuard` stops a run whose loss is NaN/Inf or far above its running median, before that
  step is applied or saved, and names the last checkpoint written while the loss was healthy.
- :class:`ResumeOverrides` makes the configured optimiser and scheduler values win over a checkpoint's on
  resume, for every optimiser and scheduler of the run.

Both name config keys through the module's ``optimizer_specs``
(:class:`restore.lightning.hyperparameters.OptimizerSpec`); a module without them gets generic names.
Listed in ``configs/callbacks/default.yaml``; a run without them (``callbacks=none``, a custom list) is
unguarded by the user's choice, and :func:`warn_if_unguarded` says so once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import shlex
import shutil
import statistics
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from restore.errors import DivergenceError, NonFiniteLossError
from restore.lightning.checkpointing import AtomicCheckpointIO
from restore.lightning.hyperparameters import OptimizerSpec, is_number, same_value, schedule_hyperparameters

__all__ = ["DivergenceGuard", "ResumeOverrides", "warn_if_unguarded"]

log = logging.getLogger(__name__)


@dataclass
class _LossStream:
    """The accepted losses of one backward pass of the training step (BaryIR: generator, potentials)."""

    recent: deque
    best: float = math.inf  # the lowest running median so far
    band_lr: float | None = None  # the learning rate of the last update made while the loss was in its band


@dataclass
class _Saved:
    """A checkpoint written at ``step``, judged by the losses its weights give next."""

    step: int
    best: dict[int, float]
    after: dict[int, list[float]] = field(default_factory=dict)
    batches: int = 0
    path: Path | None = None  # known for the checkpoint a run resumed from


class DivergenceGuard(Callback):
    """Stop training (:class:`~restore.errors.NonFiniteLossError` / :class:`~restore.errors.DivergenceError`)
    when a loss is NaN/Inf or above ``factor`` × the median of the last ``window`` healthy losses.

    Every loss the step backpropagates is checked in ``on_before_backward``, which Lightning calls for the
    loss of ``training_step`` and for each ``manual_backward`` (BaryIR's two players): the stop comes
    before the backward pass, so nothing of that step is applied, logged as a checkpoint or averaged into
    the EMA. The k-th loss of a step is described by the module's ``optimizer_specs[k]`` (its name, its
    optimiser's config key; a ``signed_loss`` only stops on NaN/Inf). All DDP ranks stop together.

    **Armed from the second loss.** Until ``window`` losses are known the median is over those seen since
    the start (or resume). A run's first losses are its highest (the network has not adapted yet), so the
    early median errs high: the check is lenient while it knows little and tightens as the run settles.
    Batch-to-batch variation is a few ×; a blow-up is orders of magnitude and fast: at lr=10 the default
    experiment's losses went 0.25, 0.12, then 1094 at step 2 and NaN at step 10, so a guard blind for
    its first 100 losses named nothing useful.

    **Last good checkpoint.** A checkpoint is judged by the losses its weights give next: when the median
    of the ``judge_steps`` losses after it is within ``band`` × the lowest running median seen before it
    (and none of them stopped the run), it is good, and ``<its folder>/<last_good>.ckpt`` becomes a hard
    link to it (a copy where the checkpoint I/O does not write new files atomically), which later saves do
    not overwrite. The stop message names that file (or, before any, the checkpoint the run resumed from
    if it proved good) and a learning rate to resume or restart with: a tenth of the one of the last
    update made while the loss was in its band (the LR range test's rule: an order of magnitude below
    where the loss blows up), rounded down to one digit.

    Args:
        factor: stop when a loss exceeds this many times the running median; None: NaN/Inf only.
        window: how many recent healthy losses the median covers.
        band: a checkpoint is good when the losses after it stay within this many times the run's lowest
            running median.
        judge_steps: how many losses after a checkpoint judge it.
        last_good: name of the link to the last good checkpoint, beside it; None: none is kept.
    """

    def __init__(self, factor: float | None = 100.0, window: int = 100, band: float = 3.0, judge_steps: int = 10,
                 last_good: str | None = "last_good") -> None:
        super().__init__()
        if factor is not None and not (is_number(factor) and factor > 1):
            raise ValueError(f"callbacks.divergence_guard.factor must be a number > 1 or null, got {factor!r}")
        if not (is_number(band) and band > 1):
            raise ValueError(f"callbacks.divergence_guard.band must be a number > 1, got {band!r}")
        for name, value in (("window", window), ("judge_steps", judge_steps)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"callbacks.divergence_guard.{name} must be an integer >= 1, got {value!r}")
        if last_good is not None and (not isinstance(last_good, str) or last_good in ("", "last") or "/" in last_good):
            raise ValueError(f"callbacks.divergence_guard.last_good must be a file name other than 'last' (the "
                             f"checkpoint callbacks' own) or null, got {last_good!r}")
        self.factor, self.window, self.band, self.judge_steps, self.last_good = \
            factor, window, band, judge_steps, last_good
        self._reset()

    def _reset(self) -> None:
        self._streams: dict[int, _LossStream] = {}
        self._saved: list[_Saved] = []
        self._last_save: int | None = None
        self._backward, self._where = 0, (0, 0, 0)
        #: the last good checkpoint and its step (None before one is known)
        self.last_good_path: Path | None = None
        self.last_good_step: int | None = None

    # -- hooks -----------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset()  # statistics of this run only: a resumed run warms up again

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.ckpt_path and Path(trainer.ckpt_path).is_file():  # good if the losses after it are
            self._saved.append(_Saved(trainer.global_step, {}, path=Path(trainer.ckpt_path)))

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._backward, self._where = 0, (trainer.global_step, trainer.current_epoch, batch_idx)

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        index, self._backward = self._backward, self._backward + 1
        spec = _spec(pl_module, index)
        stream = self._streams.setdefault(index, _LossStream(deque(maxlen=self.window)))
        value = float(loss.detach()) / _loss_scale(trainer)
        median = statistics.median(stream.recent) if stream.recent else None
        diverged = (self.factor is not None and not spec.signed_loss and median is not None and median > 0
                    and math.isfinite(value) and value > self.factor * median)
        if trainer.strategy.reduce_boolean_decision(not math.isfinite(value) or diverged, all=False):
            self._stop(trainer, spec, index, value, median if diverged else None)
        in_band = spec.signed_loss or not 0 < stream.best < math.inf or value <= self.band * stream.best
        stream.recent.append(value)
        if not spec.signed_loss:
            stream.best = min(stream.best, statistics.median(stream.recent))
            if in_band:
                stream.band_lr = _lr(trainer, index)
        for saved in self._saved:
            saved.after.setdefault(index, []).append(value)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        # before this batch's checkpoint: Lightning runs checkpoint callbacks last
        for saved in list(self._saved):
            saved.batches += 1
            if saved.batches >= self.judge_steps:
                self._saved.remove(saved)
                if self._healthy(saved):
                    self._promote(trainer, saved)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        step = trainer.global_step
        if trainer.state.fn != "fit" or step == self._last_save:  # best and last of one step: one entry
            return
        self._last_save = step
        best = {i: s.best for i, s in self._streams.items()}
        self._saved.append(_Saved(step, best))

    # -- judging checkpoints -----------------------------------------------------------------------
    def _healthy(self, saved: _Saved) -> bool:
        """The losses after the checkpoint stayed within ``band`` × the lowest running median before it."""
        for index, after in saved.after.items():
            best = saved.best.get(index, math.inf)  # a signed loss keeps none
            if after and 0 < best < math.inf and statistics.median(after) > self.band * best:
                return False
        return True

    def _promote(self, trainer: Trainer, saved: _Saved) -> None:
        if saved.path is not None:  # the checkpoint the run resumed from: named where it is
            self.last_good_path, self.last_good_step = saved.path, saved.step
            return
        if self.last_good is None or not trainer.is_global_zero:
            return
        source = _file_saved_at(trainer, saved.step, exclude=f"{self.last_good}.ckpt")
        if source is None:  # overwritten by a later save: that one is judged in turn
            return
        target = source.parent / f"{self.last_good}.ckpt"
        tmp = source.parent / f".{target.name}.{os.getpid()}.tmp"
        try:
            linked = False
            if isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):  # saves replace files (new inodes),
                with contextlib.suppress(OSError):  # so a link keeps this content; no hard links here: a copy
                    os.link(source, tmp)
                    linked = True
            if not linked:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except OSError as err:  # a full disk: keep training, say so
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.warning("Could not keep %s as %s: %s", source, target, err)
            return
        self.last_good_path, self.last_good_step = target, saved.step

    # -- stopping ---------------------------------------------------------------------------------
    def _stop(self, trainer: Trainer, spec: OptimizerSpec, index: int, value: float, median: float | None) -> None:
        step, epoch, batch_idx = self._where
        where = f"global step {step} (epoch {epoch}, batch {batch_idx})"
        name = spec.loss[:1].upper() + spec.loss[1:]
        if median is not None:
            recent = len(self._streams[index].recent)
            message, error = (f"{name} {value:.4g} is more than {self.factor:g}× the median of the last {recent} "
                              f"losses ({median:.4g}) at {where}: the training diverges. Stopped before applying "
                              "it (the check: callbacks.divergence_guard.factor)."), DivergenceError
        else:
            ranks = " (on this or another rank)" if trainer.world_size > 1 else ""
            message, error = f"{name} is {value} at {where}{ranks}; stopped before applying it.", NonFiniteLossError
        self._saved.clear()  # checkpoints whose next losses include this one are not good
        raise error(f"{message} {self._advice(trainer, spec, index)}")

    def _advice(self, trainer: Trainer, spec: OptimizerSpec, index: int) -> str:
        """What to run next: resume from the last good checkpoint, or start again, with a lower learning rate."""
        stream, lr = self._streams.get(index), _lr(trainer, index)
        base = _base_lr(trainer, index)
        if base is None:
            return "Start again with a lower learning rate or gradient clipping."
        broke = min(base, stream.band_lr) if stream is not None and stream.band_lr else base
        suggested = _round_down(broke / 10)
        why = (f"the learning rate is now {lr:.3g}; {suggested:g} is a tenth of {broke:.3g}, the rate of the last "
               "update made while the loss was in its healthy band, rounded down")
        if self.last_good_path is not None:
            overrides = {"ckpt_path": str(self.last_good_path), f"{spec.key}.lr": f"{suggested:g}"}
            later = (f" Checkpoints written after it (the last at step {self._last_save}) were not followed by "
                     "healthy losses: do not resume from them." if (self._last_save or -1) > self.last_good_step
                     else "")
            return (f"The last checkpoint written while the loss was healthy is {self.last_good_path} (step "
                    f"{self.last_good_step}); resume from it with a lower learning rate: {_command(overrides)} "
                    f"({why}). On resume the configured optimizer and scheduler values replace the checkpoint's."
                    + later)
        dirs = sorted({str(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)})
        if self._last_save is not None:
            reason = (f"no checkpoint was followed by healthy losses (the last one was written at step "
                      f"{self._last_save}; checkpoints go to {', '.join(dirs)})")
        else:
            reason = "no checkpoint has been written yet" + (f" (checkpoints go to {', '.join(dirs)})" if dirs
                                                              else " (no checkpoint callback is configured)")
        overrides = {"ckpt_path": None, f"{spec.key}.lr": f"{suggested:g}"}
        return (f"{reason[:1].upper()}{reason[1:]}: start again with a lower learning rate: {_command(overrides)} "
                f"({why}).")


class ResumeOverrides(Callback):
    """On resume (``trainer.fit(..., ckpt_path=...)``), the configured optimiser and scheduler values win over
    the checkpoint's where they differ, for every optimiser of ``trainer.optimizers`` and every scheduler of
    ``trainer.lr_scheduler_configs`` (BaryIR: both players'); each difference is logged and kept in
    :attr:`applied`.

    The configured values are read in ``on_fit_start``, after ``configure_optimizers`` and before Lightning
    restores the checkpoint's states. The learning rate is compared at its base (the scheduler's
    ``initial_lr``); when it or a scheduler value differs (``min_lr``, ``warmup_steps``, the total steps after
    a change of ``trainer.max_steps``), the configured schedule is replayed to the resumed step (it needs
    the module's ``optimizer_specs``), so the run continues exactly as if it had used the new values from
    the start.
    """

    def __init__(self) -> None:
        super().__init__()
        #: (config key, checkpoint value, configured value) applied at the last resume
        self.applied: list[tuple[str, Any, Any]] = []
        self._configured: list[tuple[list[dict], dict | None]] = []

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._configured = []
        for optimizer in trainer.optimizers:
            groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
            for group in groups:  # a scheduler has scaled lr already; initial_lr is the configured one
                group["lr"] = group.get("initial_lr", group["lr"])
            scheduler = _scheduler_of(trainer, optimizer)
            self._configured.append((groups, None if scheduler is None else copy.deepcopy(scheduler.state_dict())))

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.applied = []
        if trainer.ckpt_path is None:
            return
        for index, (optimizer, configured) in enumerate(zip(trainer.optimizers, self._configured)):
            self.applied += self._apply(trainer, _spec(pl_module, index), optimizer, *configured)
        if self.applied and trainer.is_global_zero:
            lrs = ", ".join(f"{float(o.param_groups[0]['lr']):.4g} ({_spec(pl_module, i).key})"
                            for i, o in enumerate(trainer.optimizers))
            log.warning("Resuming from %s with the configured values where they differ from the checkpoint's: %s; "
                        "learning rate now %s at step %d", trainer.ckpt_path,
                        "; ".join(f"{k}: {old} → {new}" for k, old, new in self.applied), lrs, trainer.global_step)

    def _apply(self, trainer: Trainer, spec: OptimizerSpec, optimizer: torch.optim.Optimizer, groups: list[dict],
               schedule: dict | None) -> list[tuple[str, Any, Any]]:
        scheduler = _scheduler_of(trainer, optimizer)
        changes: list[tuple[str, Any, Any]] = []
        for group, configured in zip(optimizer.param_groups, groups):
            for key, value in configured.items():
                if key in ("lr", "initial_lr") or key not in group or same_value(group[key], value):
                    continue
                changes.append((f"{spec.key}.{key}", group[key], value))
                group[key] = copy.deepcopy(value)
            restored_lr = group.get("initial_lr", group["lr"]) if scheduler is not None else group["lr"]
            if not same_value(restored_lr, configured["lr"]):
                changes.append((f"{spec.key}.lr", restored_lr, configured["lr"]))
                if scheduler is None:
                    group["lr"] = configured["lr"]
        if scheduler is not None and schedule is not None:
            before, after = schedule_hyperparameters(scheduler.state_dict()), schedule_hyperparameters(schedule)
            changes += [(f"{spec.scheduler_key} ({k})", before[k], after.get(k)) for k in before
                        if not same_value(before[k], after.get(k))]
            if changes:
                self._replay(trainer, spec, optimizer, scheduler)
        return changes

    @staticmethod
    def _replay(trainer: Trainer, spec: OptimizerSpec, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Set ``scheduler`` (and the optimizer's lr) to where the configured schedule is at the resumed step."""
        if spec.scheduler is None:
            log.warning("%s: the module gives no scheduler to replay (optimizer_specs); the learning rate keeps the "
                        "checkpoint's schedule", spec.scheduler_key)
            return
        dummy, fresh = spec.build([{"params": [nn.Parameter(torch.zeros(1))]} for _ in optimizer.param_groups],
                                  total_steps=int(trainer.estimated_stepping_batches))
        for _ in range(scheduler.last_epoch - fresh.last_epoch):
            dummy.step()  # no gradients: a no-op that keeps torch's step-order check quiet
            fresh.step()
        scheduler.load_state_dict(fresh.state_dict())
        for group, replayed in zip(optimizer.param_groups, dummy.param_groups):
            group["lr"], group["initial_lr"] = replayed["lr"], replayed["initial_lr"]


def warn_if_unguarded(trainer: Trainer) -> None:
    """Say once when a fit runs without :class:`DivergenceGuard` (or resumes without :class:`ResumeOverrides`)."""
    missing = [] if any(isinstance(c, DivergenceGuard) for c in trainer.callbacks) else \
        ["DivergenceGuard: a NaN or diverging loss will not stop the run"]
    if trainer.ckpt_path and not any(isinstance(c, ResumeOverrides) for c in trainer.callbacks):
        missing.append("ResumeOverrides: the checkpoint's optimizer and scheduler values are kept")
    if missing:
        rank_zero_warn(f"No {'; no '.join(missing)}. Add them to the callbacks (configs/callbacks/default.yaml lists "
                       "divergence_guard and resume_overrides).")


# -- helpers ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _UnnamedSpec:
    """What :func:`_spec` gives for an optimiser the module does not describe."""

    key: str
    scheduler_key: str
    loss: str
    signed_loss: bool = False
    scheduler: None = None


def _spec(pl_module: LightningModule, index: int) -> OptimizerSpec | _UnnamedSpec:
    """The module's ``optimizer_specs[index]``, or generic names for modules that give none."""
    specs = getattr(pl_module, "optimizer_specs", None) or []
    if index < len(specs):
        return specs[index]
    return _UnnamedSpec(key=f"optimizers[{index}]", scheduler_key=f"lr_scheduler_configs[{index}]",
                        loss="loss" if index == 0 else f"loss {index + 1}")


def _scheduler_of(trainer: Trainer, optimizer: torch.optim.Optimizer) -> Any:
    return next((c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer), None)


def _lr(trainer: Trainer, index: int) -> float | None:
    return float(trainer.optimizers[index].param_groups[0]["lr"]) if index < len(trainer.optimizers) else None


def _base_lr(trainer: Trainer, index: int) -> float | None:
    if index >= len(trainer.optimizers):
        return None
    group = trainer.optimizers[index].param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def _loss_scale(trainer: Trainer) -> float:
    """The AMP loss scale that ``on_before_backward`` sees the loss multiplied by (1 without a scaler)."""
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    return float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0


def _round_down(value: float) -> float:
    """``value`` rounded down to one significant digit (0.011 → 0.01, 0.37 → 0.3)."""
    if not value > 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(value))
    return float(f"{math.floor(value / 10 ** exponent + 1e-9)}e{exponent}")


def _stored_step(path: Path) -> int | None:
    """The ``global_step`` a checkpoint file holds (its tensors memory-mapped, not read); None if unreadable."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # noqa: BLE001 - not a checkpoint of this run: not a candidate
        return None


def _file_saved_at(trainer: Trainer, step: int, exclude: str) -> Path | None:
    """The checkpoint file the trainer's checkpoint callbacks hold for ``step`` (its last, best or top-k)."""
    seen: list[str] = []
    for cb in trainer.checkpoint_callbacks:
        for path in (getattr(cb, "last_model_path", ""), getattr(cb, "best_model_path", ""),
                     *getattr(cb, "best_k_models", {})):
            if path and path not in seen:
                seen.append(str(path))
    for path in map(Path, seen):
        real = Path(os.path.realpath(path))
        if real.name != exclude and real.is_file() and _stored_step(real) == step:
            return real
    return None


def _command(overrides: dict[str, str | None]) -> str:
    """The command line to run next: this run's with ``overrides`` set (None: removed), or just the overrides."""
    from hydra.core.hydra_config import HydraConfig

    added = [f"{k}={v}" for k, v in overrides.items() if v is not None]
    if not HydraConfig.initialized():  # a script or a test: no command line to repeat
        return " ".join(added)
    kept = [o for o in HydraConfig.get().overrides.task if o.lstrip("+~").split("=", 1)[0] not in overrides]
    return " ".join(["python", sys.argv[0], *map(shlex.quote, kept + added)])
