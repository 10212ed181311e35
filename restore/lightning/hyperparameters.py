"""Optimisers and schedulers as configured: checked at start-up, built in ``configure_optimizers``, compared on resume.

A module lists its optimisers as :class:`OptimizerSpec` (``module.optimizer_specs``, in the order of
``configure_optimizers``): the Hydra partials, the config keys that name them in errors and logs, and what
the loss each one minimises is called. :class:`restore.lightning.callbacks.ResumeOverrides` and
:class:`restore.lightning.callbacks.DivergenceGuard` read the list, so every optimiser of every module is
covered without the module wiring anything.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

__all__ = ["OptimizerSpec", "check_hyperparameters", "is_number", "same_value", "schedule_hyperparameters"]


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimiser of a LightningModule, as configured.

    Creating it checks the values: numbers and bools where the target's signature has them
    (:func:`check_hyperparameters`), then a build on a dummy parameter, so torch's own checks (``lr < 0``,
    an unknown argument) fail at start-up naming the config key instead of at the first step.

    Args:
        optimizer: partial ``(params) -> Optimizer`` (Hydra ``_partial_: true``).
        scheduler: partial ``(optimizer, total_steps) -> LRScheduler`` stepped every step, or None.
        key: where the optimiser lives in the config (``model.optimizer``).
        scheduler_key: where the scheduler lives in the config (``model.scheduler``).
        loss: what the loss this optimiser minimises is called in the divergence guard's messages.
        signed_loss: the loss can be negative or hover around zero (a Kantorovich potential's), so it has
            no scale to compare with: only NaN/Inf stop it.
    """

    optimizer: Callable[..., torch.optim.Optimizer]
    scheduler: Callable[..., Any] | None = None
    key: str = "model.optimizer"
    scheduler_key: str = "model.scheduler"
    loss: str = "loss"
    signed_loss: bool = False

    def __post_init__(self) -> None:
        check_hyperparameters(self.optimizer, self.key)
        if self.scheduler is not None:
            check_hyperparameters(self.scheduler, self.scheduler_key)
        try:
            dummy = self.optimizer(params=[nn.Parameter(torch.zeros(1))])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{self.key} is invalid: {err}") from err
        if self.scheduler is not None:
            try:
                self.scheduler(optimizer=dummy, total_steps=1000)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{self.scheduler_key} is invalid: {err}") from err

    def build(self, params: Iterable, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        """The optimiser over ``params`` and its scheduler (None without one)."""
        optimizer = self.optimizer(params=params)
        scheduler = None if self.scheduler is None else self.scheduler(optimizer=optimizer, total_steps=total_steps)
        return optimizer, scheduler


def is_number(value: Any) -> bool:
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
        elif is_number(default):
            ok, expected = is_number(value), "a number"
        elif isinstance(default, tuple) and default and all(is_number(d) for d in default):
            ok = isinstance(value, (list, tuple)) and len(value) == len(default) and all(map(is_number, value))
            expected = f"a list of {len(default)} numbers"
        else:
            continue
        if not ok:
            raise ValueError(f"{key}.{name} must be {expected}, got {value!r} ({type(value).__name__})")


def same_value(a: Any, b: Any) -> bool:
    """Equal hyper-parameter values: numbers (tensors included) to a relative 1e-9, sequences item by item."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = float(a), float(b)
    if is_number(a) and is_number(b):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


_SCHEDULE_PROGRESS = {"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial",
                      "base_lrs", "verbose", "_schedulers"}


def schedule_hyperparameters(state: dict, prefix: str = "") -> dict[str, Any]:
    """The hyper-parameters in an LR scheduler's ``state_dict`` (progress counters and lrs left out),
    flattened over the sub-schedulers of a ``SequentialLR``/``ChainedScheduler``."""
    out = {f"{prefix}{k}": v for k, v in state.items() if k not in _SCHEDULE_PROGRESS}
    for i, sub in enumerate(state.get("_schedulers") or []):
        if isinstance(sub, dict):
            out.update(schedule_hyperparameters(sub, f"{prefix}{i}."))
    return out
