"""configs/callbacks/{early_stopping,model_summary}.yaml and configs/logger/many_loggers.yaml: they build beside the
default callbacks (the training guards among them), and early stopping stops a run whose metric stops improving."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import EarlyStopping

from restore.lightning import DivergenceGuard, ModelSummary, ResumeOverrides
from restore.utils.config import instantiate_group


def test_early_stopping_and_model_summary_compose_with_the_default_callbacks(compose):
    cfg = compose("train", ["callbacks=[default,early_stopping,model_summary]", "optimized_metric=val/ssim"])
    callbacks = {type(c): c for c in instantiate_group(cfg, "callbacks")}
    assert len(callbacks) == 9  # the 8 default ones kept (model_summary among them)
    assert {DivergenceGuard, ResumeOverrides} <= set(callbacks)
    stopper = callbacks[EarlyStopping]
    assert stopper.monitor == "val/ssim" and stopper.mode == "max"  # follows optimized_metric / optimized_mode
    assert callbacks[ModelSummary]._max_depth == 1  # one level deep unless set otherwise
    cfg = compose("train", ["callbacks=early_stopping", "optimized_mode=min", "optimized_metric=val/lpips"])
    (stopper,) = instantiate_group(cfg, "callbacks")
    assert stopper.monitor == "val/lpips" and stopper.mode == "min"


def test_many_loggers_builds_every_logger(compose, offline_loggers):
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    cfg = compose("train", ["logger=many_loggers"])
    assert {type(lg) for lg in instantiate_group(cfg, "logger")} == {CSVLogger, TensorBoardLogger, MLFlowLogger,
                                                                     WandbLogger}


def test_early_stopping_stops_a_run_that_no_longer_improves(compose):
    """lr = 0: the weights never change (val/psnr moves by float rounding in the EMA only, under min_delta); with
    patience 2 the run stops at the third validation (steps 2, 4, 6) instead of running its 40 steps."""
    from train import train

    cfg = compose("train", ["callbacks=[default,early_stopping]", "callbacks.early_stopping.patience=2",
                            "callbacks.early_stopping.min_delta=0.01",
                            "model.optimizer.lr=0", "trainer.max_steps=40", "trainer.val_check_interval=2",
                            "data.num_workers=0", "data.batch_size=2", "data.train.patch_size=32",
                            "++data.val.crop_size=32", "logger=csv", "~callbacks.rich_progress_bar"])
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 6
    psnr = [line.split(",") for line in (run_dir / "csv" / "metrics.csv").read_text().splitlines()]
    column = psnr[0].index("val/psnr")
    values = [float(row[column]) for row in psnr[1:] if row[column]]
    assert len(values) == 3 and max(values) - min(values) < 1e-3
