"""What train.py / eval.py print through Lightning: its rich progress bar and model summary without the figures
that mislead here, and without its sales tips.

Lightning's :class:`~lightning.pytorch.callbacks.RichProgressBar` titles the bar ``Epoch 3/-2`` when training is
bounded by steps (``max_epochs: -1``), and :class:`~lightning.pytorch.callbacks.RichModelSummary` prints a FLOPs
column and a ``Total FLOPs: 0`` line when the module has no ``example_input_array`` (nothing was measured).
The subclasses below change only those lines.
"""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar

__all__ = ["StepProgressBar", "ModelSummary", "hide_lightning_tips"]

# the loggers Lightning's rank_zero_info writes through (lightning.pytorch's and lightning.fabric's)
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _NoTips(logging.Filter):
    """Drops Lightning's "💡 Tip: …" messages (offers of its cloud services, litlogger / litmodels), and its note
    that the configured summary (:class:`ModelSummary`) replaces its default one."""

    DROPPED = ("💡 Tip:", "Trainer already configured with model summary callbacks")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.DROPPED)


_NO_TIPS = _NoTips()


def hide_lightning_tips() -> None:
    """Keep Lightning's tips off the console (a filter on its rank-zero loggers, installed once; train.py and
    eval.py install it where they build the trainer: :func:`restore.utils.config.instantiate_trainer`)."""
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _NO_TIPS not in logger.filters:
            logger.addFilter(_NO_TIPS)


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar; the epoch shows as ``Epoch 3`` when the number of epochs is unbounded
    (``max_epochs: -1``, training counted in steps), where Lightning's would show ``Epoch 3/-2``."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch)
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs < 1:
            description = description.replace(f"Epoch {current_epoch}/{max_epochs - 1}", f"Epoch {current_epoch}")
        return description


class ModelSummary(RichModelSummary):
    """Lightning's rich model summary, without the FLOPs column and total when nothing measured them
    (``Total FLOPs: 0``: Lightning counts FLOPs only for modules with an ``example_input_array``)."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        if total_flops:
            return RichModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                              total_training_modes, total_flops, **summarize_kwargs)
        from lightning.pytorch.utilities.model_summary.model_summary import (
            get_formatted_model_size,
            get_human_readable_count,
        )
        from rich import get_console
        from rich.table import Table

        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        for name, _ in columns:
            table.add_column(" " if name == " " else name, justify="right" if name in ("Params",) else "left",
                             style="dim" if name == " " else None, no_wrap=name == "Name")
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        grid = Table.grid(expand=True)
        grid.add_row(f"[bold]Trainable params[/]: {get_human_readable_count(int(trainable_parameters))}")
        grid.add_row("[bold]Non-trainable params[/]: "
                     f"{get_human_readable_count(int(total_parameters - trainable_parameters))}")
        grid.add_row(f"[bold]Total params[/]: {get_human_readable_count(int(total_parameters))}")
        grid.add_row(f"[bold]Total estimated model params size (MB)[/]: {get_formatted_model_size(model_size)}")
        grid.add_row(f"[bold]Modules in train mode[/]: {total_training_modes['train']}")
        grid.add_row(f"[bold]Modules in eval mode[/]: {total_training_modes['eval']}")
        console.print(grid)
        return None
