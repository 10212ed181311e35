"""train.py and eval.py as a user runs them (subprocesses, tiny budgets)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

QUICK = ["trainer.max_steps=12", "trainer.val_check_interval=6", "data.num_workers=0", "data.batch_size=2",
         "callbacks.ema.decay=0.9", "++data.val.crop_size=64"]


def run(script: str, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / script), *overrides], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    return proc


def test_train_then_eval_reproduces_val_metrics(tmp_path):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    proc = run("train.py", *QUICK, f"hydra.run.dir={train_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("cmd.txt", "config_resolved.yaml", ".hydra/config.yaml", "checkpoints/last.ckpt",
                 "checkpoints/best.ckpt", "metrics.json", "metrics.md"):
        assert (train_dir / name).exists(), name
    assert list((train_dir / "tensorboard").rglob("events.out.tfevents*"))
    assert (train_dir / "csv" / "metrics.csv").exists()
    val = json.loads((train_dir / "metrics.json").read_text())
    assert "RGB" in val["protocols"][0]
    assert set(val["metrics"]["all"]["psnr"]) == {"output", "input"}

    proc = run("eval.py", f"ckpt_path={train_dir / 'checkpoints' / 'last.ckpt'}", "save_images=true",
               "++data.val.crop_size=64", "data.num_workers=0", f"hydra.run.dir={eval_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Test metric" not in proc.stdout  # Lightning's test table: one results table, ours
    test = json.loads((eval_dir / "metrics.json").read_text())
    assert list(test["metrics"]["all"]) == ["psnr", "ssim", "psnr_y", "ssim_y"]  # protocol 2: Y, no crop
    for name in ("psnr", "ssim", "psnr_y", "ssim_y"):
        for side in ("output", "input"):
            assert test["metrics"]["all"][name][side] == pytest.approx(val["metrics"]["all"][name][side],
                                                                        abs=1e-3), (name, side)
    assert len(list((eval_dir / "images").glob("*.png"))) >= 1
    # the metrics files name the checkpoint, its step, the data (and why) and each test set with its degradation
    assert test["checkpoint"] == str(train_dir / "checkpoints" / "last.ckpt") and test["global_step"] == 12
    assert test["data"] == "denoise/embedded (from the checkpoint's training config)"
    (test_set,) = test["test_sets"]
    assert test_set["images"] == 2 and test_set["degradation"].startswith("AddGaussianNoise(sigma=(25.0, 25.0)")
    md = (eval_dir / "metrics.md").read_text()
    assert md.startswith(f"Checkpoint: `{train_dir / 'checkpoints' / 'last.ckpt'}` (global step 12).\n"
                         "Data: denoise/embedded (from the checkpoint's training config).\nTest sets:\n- denoise: 2 "
                         "images, scikit-image photographs (val split); degradation: AddGaussianNoise(sigma=(25.0")
    assert "\nProtocols:" in md

    # weights that load but give NaN: an error naming the image and the file, no metrics.json without output PSNR
    ckpt = torch.load(train_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for state in (ckpt["state_dict"], ckpt.get("current_model_state", {})):
        for value in state.values():
            if value.is_floating_point():
                value.fill_(float("nan"))
    torch.save(ckpt, tmp_path / "nan.ckpt")
    proc = run("eval.py", f"ckpt_path={tmp_path / 'nan.ckpt'}", "++data.val.crop_size=64", "data.num_workers=0",
               f"hydra.run.dir={tmp_path / 'eval_nan'}")
    assert proc.returncode != 0 and str(tmp_path / "nan.ckpt") in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "eval_nan" / "metrics.json").exists()


def test_console_shows_no_tips_no_zero_flops_no_negative_epochs_and_one_results_table(tmp_path):
    proc = run("train.py", *QUICK, "test=true", f"hydra.run.dir={tmp_path / 'train'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert "Tip:" not in console and "litlogger" not in console and "litmodels" not in console
    assert "FLOPs" not in console
    assert re.search(r"Epoch 0 ", console) and not re.search(r"Epoch \d+/-", console)
    assert "Test metric" not in console  # Lightning's test table: ours is printed instead
    assert console.count("test set (best checkpoint, step 12)") == 1
    # train.py's test stage names the checkpoint it tested, its step and the test sets with their degradation
    tested = json.loads((tmp_path / "train" / "test" / "metrics.json").read_text())
    assert tested["checkpoint"] == str(tmp_path / "train" / "checkpoints" / "best.ckpt")
    assert tested["global_step"] == 12 and tested["data"] == "denoise/embedded"
    assert tested["test_sets"][0]["degradation"].startswith("AddGaussianNoise(sigma=(25.0, 25.0)")


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path, monkeypatch):
    """A bad logging setting fails after Hydra created the run folder and before anything is written in it."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    (tmp_path / "keep").mkdir()
    proc = run("train.py", f"paths.log_dir={tmp_path / 'outputs'}",
               f"hydra.job_logging.handlers.file.filename={tmp_path / 'missing' / 'run.log'}")
    assert proc.returncode == 1 and "Unable to configure handler 'file'" in proc.stderr
    # outputs/<task>/<time> was created, then removed; a failed run's folder with files stays (the test above)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_help_starts_with_usage_and_three_examples_before_the_config_groups(script):
    proc = run(script, "--help", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    head, groups = proc.stdout.split("== Configuration groups ==")
    lines = head.strip().splitlines()
    assert lines[0].startswith(f"usage: python {script} ")
    examples = [line for line in lines if line.startswith(f"  python {script}")]
    assert len(examples) == 3 and all("#" in line for line in examples)  # each says what it does
    assert "experiment/zoo: " in groups  # Hydra's listing follows


def test_missing_required_value_names_the_config_file_in_one_last_line(tmp_path, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    proc = run("train.py", "data.batch_size=???", "data.num_workers=0", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 1
    *_, hint, last = proc.stderr.strip().splitlines()
    assert last.startswith("ConfigError: Cannot build `data`: `data.batch_size` is missing, set in ")
    assert "configs/data/denoise/embedded.yaml" in last
    log = tmp_path / "denoise_nafnet_tiny.log"  # the run's log keeps the traceback
    assert str(log) in hint and "HYDRA_FULL_ERROR=1" in hint
    assert "Traceback (most recent call last)" in log.read_text()


def advised_command(stderr: str) -> list[str]:
    """The overrides of the command the divergence guard's message says to run next."""
    match = re.search(r"(?:start again|resume from it) with a lower learning rate: python \S*train.py (.*?) \(the",
                      stderr)
    assert match, stderr[-3000:]
    return shlex.split(match.group(1))


def test_a_diverging_run_says_which_command_restarts_it(tmp_path):
    """lr=100 blows up at the second step: stopped there, the message gives the user's command with a learning
    rate a tenth of the last one that kept the loss healthy (the first step's, 100 × the warm-up's 1e-3)."""
    proc = run("train.py", "model.optimizer.lr=100", *QUICK, f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and "DivergenceError" in proc.stderr, proc.stderr[-3000:]
    assert "at global step 1 " in proc.stderr
    assert advised_command(proc.stderr) == [*QUICK, "model.optimizer.lr=0.01"]


@pytest.mark.slow
@pytest.mark.parametrize("lr", ["10", "100"])
def test_the_advice_after_divergence_recovers_the_default_run(tmp_path, lr):
    """`python train.py model.optimizer.lr=10` (or 100), then exactly the command its message gives: the
    run finishes above the input PSNR."""
    proc = run("train.py", f"model.optimizer.lr={lr}", f"hydra.run.dir={tmp_path / 'diverged'}")
    assert proc.returncode != 0 and re.search(r"(NonFiniteLoss|Divergence)Error", proc.stderr), proc.stderr[-3000:]
    proc = run("train.py", *advised_command(proc.stderr), f"hydra.run.dir={tmp_path / 'advised'}", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    val = json.loads((tmp_path / "advised" / "metrics.json").read_text())["metrics"]["all"]
    assert val["psnr"]["output"] > val["psnr"]["input"], val


def test_ddp_two_cpu_processes(tmp_path):
    proc = run("train.py", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_steps=3",
               "trainer.val_check_interval=3", "data.num_workers=0", "data.batch_size=2",
               "++data.val.crop_size=64", f"hydra.run.dir={tmp_path}", timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_default_run_beats_the_input_clearly(tmp_path):
    """The README's main job as it ships (`python train.py`, ≈4 min on one CPU thread): the val PSNR of
    the output must clear the input's by a wide margin (measured: +9.4 dB)."""
    proc = run("train.py", f"hydra.run.dir={tmp_path}", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    val = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["all"]
    assert val["psnr"]["output"] - val["psnr"]["input"] > 6.0, val
    assert val["ssim"]["output"] > val["ssim"]["input"] + 0.2, val
