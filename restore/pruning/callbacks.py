"""Lightning callbacks of a pruning run: pruned weights stay zero (EMA copy included), checkpoints
with the masks folded in (and read back for a resumed round), a snapshot of the weights at step k
for late rewinding, and a progress bar over rounds and steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.weight_averaging import WeightAveraging
from torch.nn.utils import prune

from restore.lightning.checkpointing import AtomicCheckpointIO
from restore.pruning.masks import PrunableWeight, dense_state_dict, fold_masks, unfold_masks, zero_pruned
from restore.weights_io import save_weights

__all__ = ["PrunedWeightsGuard", "DenseCheckpoints", "MaskedCheckpointIO", "WeightSnapshot", "RoundProgressBar",
           "LastValidationStep"]


class PrunedWeightsGuard(Callback):
    """Keeps pruned weights exactly zero in the trained and the averaged (EMA) network.

    The pruning pre-hooks already zero pruned entries in every forward pass; this callback also
    (1) zeroes their raw values (``weight_orig``) after every optimiser step, so checkpoints hold
    zeros whatever the optimiser (momentum, weight decay) did, and (2) copies the masks into the
    copy that Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` (EMA) keeps and
    zeroes its pruned raw values: that callback averages buffers too (``use_buffers=True``), so its
    masks are averages of masks, which must stay exactly 0/1. Put it after the EMA callback (the
    pruning run appends it last), so it runs after the EMA update of the same step.

    Args:
        weights: the network's prunable weights (masks attached).
    """

    def __init__(self, weights: Sequence[PrunableWeight]) -> None:
        self.weights = list(weights)

    @torch.no_grad()
    def _sync(self, trainer: Trainer, pl_module: LightningModule) -> None:
        zero_pruned(self.weights)
        masks = {name: buf for name, buf in pl_module.named_buffers() if name.endswith("_mask")}
        for callback in trainer.callbacks:
            average = getattr(callback, "_average_model", None) if isinstance(callback, WeightAveraging) else None
            if average is None:
                continue
            averaged = average.module
            own = dict(averaged.named_buffers())
            params = dict(averaged.named_parameters())
            for name, mask in masks.items():
                if name not in own:
                    raise RuntimeError(f"the EMA copy of the network has no mask {name!r}: masks must be attached "
                                       "before the Trainer is built")
                own[name].copy_(mask)
                params[name[:-5] + "_orig"].mul_(mask)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._sync(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        self._sync(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # the EMA callback has just copied its weights into the network: refresh the masked weights
        zero_pruned(self.weights)


class DenseCheckpoints(Callback):
    """Writes the round's Lightning checkpoints with the masks folded into the weights
    (``net.w`` instead of ``net.w_orig`` + ``net.w_mask``, for the EMA ``state_dict`` and the raw
    ``current_model_state``) and the masks under ``pruning_masks``, so ``restore.load_model`` and
    ``eval.py ckpt_path=…`` read them like any checkpoint. A round interrupted mid-way resumes from
    its ``last.ckpt`` through :class:`MaskedCheckpointIO`, which restores the re-parametrisation. Put
    it after the EMA callback (its ``on_save_checkpoint`` builds the two state dicts)."""

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        masks: dict[str, torch.Tensor] = {}
        for key in ("state_dict", "current_model_state"):
            if key in checkpoint:
                checkpoint[key], masks = fold_masks(checkpoint[key])
        checkpoint["pruning_masks"] = {k.removeprefix("net."): v.cpu() for k, v in masks.items()}


class MaskedCheckpointIO(AtomicCheckpointIO):
    """Reads a round checkpoint written through :class:`DenseCheckpoints` back into the pruned module:
    each folded ``net.w`` becomes ``net.w_orig`` + ``net.w_mask`` again (:func:`~restore.pruning.masks.
    unfold_masks`, from ``pruning_masks``), in the raw and the EMA state dicts, so
    ``trainer.fit(ckpt_path=<round>/checkpoints/last.ckpt)`` resumes the round at its step. Writes as
    :class:`~restore.lightning.AtomicCheckpointIO` does (digest and size checks included)."""

    def load_checkpoint(self, path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(path, *args, **kwargs)
        masks = {f"net.{name}": mask for name, mask in checkpoint.get("pruning_masks", {}).items()}
        for key in ("state_dict", "current_model_state"):
            if key in checkpoint:
                checkpoint[key] = unfold_masks(checkpoint[key], masks)
        return checkpoint


class WeightSnapshot(Callback):
    """Saves the network's dense weights (masks folded) after optimiser step ``step`` to ``path``
    (safetensors): the rewinding point of late rewinding (Frankle et al., "Linear Mode
    Connectivity and the Lottery Ticket Hypothesis", ICML 2020, Sec. 5)."""

    def __init__(self, step: int, path: str | Path, net_of: Callable[[LightningModule], torch.nn.Module]) -> None:
        if step < 1:
            raise ValueError(f"WeightSnapshot step must be >= 1 (step 0 is θ₀), got {step}")
        self.step, self.path, self.net_of = int(step), Path(path), net_of

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            save_weights(dense_state_dict(self.net_of(pl_module)), self.path, metadata={"step": str(self.step)})


class RoundProgressBar(RichProgressBar):
    """Lightning's rich progress bar with a second bar over the pruning rounds above the step bar.

    Uses two of ``RichProgressBar``'s overridable internals (``_init_progress`` to add the task,
    ``_get_train_description`` for the label), as Lightning has no public hook for extra tasks.
    """

    def __init__(self, round_index: int, rounds: int, remaining: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.round_index, self.rounds, self.remaining = round_index, rounds, remaining
        self._round_task = None

    def _init_progress(self, trainer: Trainer) -> None:
        super()._init_progress(trainer)
        if self.progress is not None and self._round_task is None:
            self._round_task = self.progress.add_task(
                f"[bold]pruning round {self.round_index}/{self.rounds} · {self.remaining:.1%} of prunable weights",
                total=self.rounds + 1, completed=self.round_index)

    def _get_train_description(self, current_epoch: int) -> str:
        return f"round {self.round_index} steps"

    def _stop_progress(self) -> None:
        super()._stop_progress()
        self._round_task = None


class LastValidationStep(Callback):
    """Records the global step of the last full validation run during ``fit`` (not the sanity
    check), so a round validates its final weights only when ``fit`` has not just done so."""

    def __init__(self) -> None:
        self.step: int | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.step = trainer.global_step


def has_pruning_hooks(module: torch.nn.Module) -> bool:
    """True when some sub-module carries a ``torch.nn.utils.prune`` re-parametrisation."""
    return any(isinstance(h, prune.BasePruningMethod) for m in module.modules() for h in m._forward_pre_hooks.values())
