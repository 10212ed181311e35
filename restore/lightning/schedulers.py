"""Learning-rate schedules, built from torch's own schedulers."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

__all__ = ["warmup_cosine"]


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
