"""Learning-rate schedules, built from torch's own schedulers."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR, StepLR

__all__ = ["warmup_cosine", "step_decay"]


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 100,
                  min_lr: float = 1e-7, warmup_start_factor: float = 1e-3) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up for ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``.

    Stepped every optimizer step (Lightning ``interval: step``). ``total_steps`` comes from
    ``trainer.estimated_stepping_batches``.
    """
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=min_lr)
    if warmup_steps == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def step_decay(optimizer: torch.optim.Optimizer, total_steps: int, step_size: int,
               gamma: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """``torch.optim.lr_scheduler.StepLR`` stepped every optimizer step: lr × ``gamma`` every ``step_size`` steps.

    The step decay of BaryIR / DnCNN-style training; ``total_steps`` is accepted (and unused) so it
    plugs in where :func:`warmup_cosine` does.
    """
    del total_steps
    return StepLR(optimizer, step_size=step_size, gamma=gamma)
