"""configs/hparams_search/: an Optuna sweep over train.py optimises the configured `optimized_metric`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from restore.utils.config import optuna_direction
from restore.utils.reporting import metric_value

ROOT = Path(__file__).resolve().parents[1]


def test_metric_value_names_the_key_and_the_logged_metrics():
    assert metric_value({"val/psnr": 30.5}, "val/psnr") == 30.5
    assert metric_value({"val/psnr": 30.5}, None) is None
    with pytest.raises(KeyError, match=r"optimized_metric='val/psnrr' was not logged.*val/psnr, val/ssim"):
        metric_value({"val/ssim": 0.9, "val/psnr": 30.5}, "val/psnrr")


def test_optuna_direction_follows_optimized_mode():
    assert optuna_direction("max") == "maximize" and optuna_direction("min") == "minimize"
    with pytest.raises(ValueError, match="optimized_mode must be max or min, got 'maximise'"):
        optuna_direction("maximise")


def test_two_trial_sweep_runs_each_trial_in_its_own_folder_and_reports_the_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep_dir = tmp_path / "sweep"
    # val/ssim, not the default val/psnr: the returned value follows the config
    overrides = ["hparams_search=denoise_optuna", "hydra.sweeper.n_trials=2", "optimized_metric=val/ssim",
                 "trainer.max_steps=2", "trainer.val_check_interval=2", "data.num_workers=0", "data.batch_size=2",
                 "data.train.patch_size=32", "++data.val.crop_size=32", "logger=csv",
                 f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [p.name for p in trials] == ["0", "1"]
    ssim, lrs = [], []
    for trial in trials:
        assert (trial / "checkpoints" / "best.ckpt").is_file()
        ssim.append(json.loads((trial / "metrics.json").read_text())["metrics"]["all"]["ssim"]["output"])
        lrs.append(yaml.safe_load((trial / "config_resolved.yaml").read_text())["model"]["optimizer"]["lr"])
    assert lrs[0] != lrs[1]  # each trial ran its own sampled parameters
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {"model.optimizer.lr", "model.optimizer.weight_decay",
                                           "callbacks.ema.decay"}
    assert results["best_value"] == pytest.approx(max(ssim), abs=1e-6)
    best = trials[ssim.index(max(ssim))]
    assert results["best_params"]["model.optimizer.lr"] == pytest.approx(
        yaml.safe_load((best / "config_resolved.yaml").read_text())["model"]["optimizer"]["lr"])
