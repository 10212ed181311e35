"""Run folders never shared between runs, shared by the ranks of one launch; config errors name the file (or
command line) that set the failing node."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from restore.utils.config import ConfigError, instantiate_node, unique_run_dir

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_ENV = ("WORLD_SIZE", "RANK", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "SLURM_JOB_ID",
                "SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_RESTART_COUNT")


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    """These tests start outside torchrun/srun even when the test run itself is inside one."""
    for key in LAUNCHER_ENV:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def freeze_now():
    """Call to freeze Hydra's ${now:} (composing re-registers it): every run then 'starts in the same second'."""
    from hydra.core.utils import setup_globals

    yield lambda: OmegaConf.register_new_resolver("now", lambda pattern: "2026-01-01_00-00-00", use_cache=True,
                                                  replace=True)
    setup_globals()  # Hydra's own resolvers back


def test_runs_started_in_the_same_second_get_their_own_folders(compose, tmp_path, freeze_now):
    runs = [compose("train", [f"paths.log_dir={tmp_path}"]) for _ in range(3)]
    freeze_now()
    dirs = [Path(cfg.hydra.run.dir) for cfg in runs]
    base = tmp_path / "denoise_nafnet_tiny" / "2026-01-01_00-00-00"
    assert dirs == [base, base.with_name(base.name + "_1"), base.with_name(base.name + "_2")]
    assert all(d.is_dir() for d in dirs)
    assert Path(runs[0].hydra.run.dir) == dirs[0]  # resolved once per run (cached), not a new folder per access
    sweeps = [compose("train", [f"paths.log_dir={tmp_path}"]) for _ in range(2)]
    freeze_now()
    sweeps = [Path(cfg.hydra.sweep.dir) for cfg in sweeps]
    assert sweeps[0] != sweeps[1] and sweeps[0].parent.name == "multirun"


def test_racing_processes_never_share_a_folder(tmp_path):
    created, base = [], str(tmp_path / "task" / "2026-01-01_00-00-00")
    threads = [threading.Thread(target=lambda: created.append(unique_run_dir(base))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(created)) == 8 and all(Path(c).is_dir() for c in created)


def _as_rank(monkeypatch, rank: int, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RANK" if "TORCHELASTIC_RUN_ID" in env else "SLURM_PROCID", str(rank))


@pytest.mark.parametrize("launcher, env", [
    ("torchrun-3f2a", {"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "3f2a"}),
    ("slurm-7741.0", {"SLURM_JOB_ID": "7741", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"}),
])
def test_the_ranks_of_one_launch_share_one_folder(compose, tmp_path, freeze_now, monkeypatch, launcher, env):
    """torchrun/srun start train.py once per rank, a second apart: without the launch's id, rank 1 made its own
    <timestamp>_1 (or next second's) folder and the run was spread over two."""
    dirs = []
    for rank, second in ((1, "00"), (0, "01")):  # the later rank first, in the next second
        _as_rank(monkeypatch, rank, **env)
        cfg = compose("train", [f"paths.log_dir={tmp_path}"])
        OmegaConf.register_new_resolver("now", lambda pattern, s=second: f"2026-01-01_00-00-{s}", use_cache=True,
                                        replace=True)
        dirs.append(Path(cfg.hydra.run.dir))
    freeze_now()
    assert dirs == [tmp_path / "denoise_nafnet_tiny" / launcher] * 2 and dirs[0].is_dir()
    assert sorted(p.name for p in dirs[0].parent.iterdir()) == [launcher]


def test_torchruns_placeholder_id_is_not_shared(tmp_path, monkeypatch):
    """torchrun's default --rdzv-id is the word 'none', the same for every launch: not a name for one run."""
    _as_rank(monkeypatch, 0, WORLD_SIZE="2", TORCHELASTIC_RUN_ID="none")
    base = str(tmp_path / "task" / "2026-01-01_00-00-00")
    assert [Path(unique_run_dir(base)).name for _ in range(2)] == ["2026-01-01_00-00-00", "2026-01-01_00-00-00_1"]


def test_a_reused_launch_id_never_writes_into_another_runs_folder(tmp_path, monkeypatch):
    base = str(tmp_path / "task" / "2026-01-01_00-00-00")
    _as_rank(monkeypatch, 0, WORLD_SIZE="2", TORCHELASTIC_RUN_ID="job1")
    (tmp_path / "task" / "torchrun-job1" / "checkpoints").mkdir(parents=True)  # an earlier run with that id
    with pytest.raises(FileExistsError, match=r"torchrun-job1.*--rdzv-id"):
        unique_run_dir(base)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # torchrun restarting this run's workers: carry on there
    assert unique_run_dir(base) == str(tmp_path / "task" / "torchrun-job1")


@pytest.mark.slow
def test_torchrun_with_two_cpu_ranks_writes_one_run_folder(tmp_path):
    """The documented torchrun command (docs/scaling.md), 4 steps on 2 gloo ranks: one folder, with checkpoints."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(ROOT / "train.py"),
           "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_steps=4",
           "trainer.val_check_interval=2", "data.batch_size=2", "data.num_workers=0", "logger=csv",
           f"paths.log_dir={tmp_path}"]
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "denoise_nafnet_tiny").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("torchrun-"), runs
    assert (runs[0] / "checkpoints" / "last.ckpt").is_file() and (runs[0] / "metrics.json").is_file()


def test_wrong_target_in_a_copied_net_config_names_that_file(compose, tmp_path):
    """The user's net config (here in their own config folder) is named, not configs/model/restoration.yaml."""
    user_configs = tmp_path / "my_configs"
    (user_configs / "model" / "net").mkdir(parents=True)
    net = OmegaConf.load(ROOT / "configs" / "model" / "net" / "nafnet_tiny.yaml")
    net._target_ = "restore.models.nafnet.nafnett"  # the typo
    OmegaConf.save(net, user_configs / "model" / "net" / "my_net.yaml")
    cfg = compose("train", [f"hydra.searchpath=[file://{user_configs}]", "model/net=my_net"])
    with pytest.raises(ConfigError) as err:
        instantiate_node(cfg, "model")
    message = str(err.value)
    assert f"{user_configs / 'model' / 'net' / 'my_net.yaml'} (model/net=my_net)" in message
    assert "Cannot build `model.net`" in message and "nafnett" in message
    assert "restoration.yaml" not in message


def test_a_command_line_value_is_named_as_such(compose):
    cfg = compose("train", ["model.optimizer.lr=abc"])
    with pytest.raises(ConfigError, match=r"model.optimizer.lr must be a number, got 'abc'") as err:
        instantiate_node(cfg, "model")
    assert "the command line (model.optimizer.lr=abc)" in str(err.value)


# --- GPU configs on a machine without one (restore.utils.config.fit_trainer_to_device)

GPU_EXPERIMENTS = ["zoo/denoise_color", "zoo/denoise_gray", "zoo/allinone_baryir", "deblur/fke_cbsd432",
                   "denoise/unireplknet_base_cbsd"]


@pytest.mark.parametrize("experiment", GPU_EXPERIMENTS)
def test_gpu_experiments_fall_back_to_the_cpu_in_one_line(compose, experiment):
    from restore.utils.config import fit_trainer_to_device

    cfg = compose("train", [f"experiment={experiment}"])
    assert cfg.trainer.accelerator == "gpu"
    node, line = fit_trainer_to_device(cfg.trainer, gpu_available=False)
    assert (node.accelerator, node.precision) == ("cpu", "32-true") and "require_gpu" not in node
    assert line.startswith("No GPU found: running on the CPU with 32-true precision (trainer=gpu asked for "
                           "accelerator=gpu, precision=bf16-mixed")
    assert node.default_root_dir == cfg.paths.output_dir  # resolved, the rest as configured
    kept, line = fit_trainer_to_device(cfg.trainer, gpu_available=True)
    assert (kept.accelerator, kept.precision, line) == ("gpu", "bf16-mixed", None)


def test_require_gpu_makes_the_missing_gpu_an_error(compose):
    from restore.utils.config import fit_trainer_to_device

    cfg = compose("train", ["trainer=gpu", "trainer.require_gpu=true"])
    with pytest.raises(ConfigError, match=r"No GPU found, and trainer.require_gpu=true .*trainer=gpu asked for "
                                          r"accelerator=gpu, precision=bf16-mixed.*trainer.require_gpu=false"):
        fit_trainer_to_device(cfg.trainer, gpu_available=False)


def test_cpu_and_auto_trainer_configs_are_left_as_they_are(compose):
    from restore.utils.config import fit_trainer_to_device

    for trainer in ("default", "cpu", "ddp"):
        cfg = compose("train", [f"trainer={trainer}"])
        node, line = fit_trainer_to_device(cfg.trainer, gpu_available=False)
        assert line is None and node.accelerator == cfg.trainer.accelerator


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU fallback")
def test_a_gpu_experiment_trains_on_this_cpu_and_says_so(compose, caplog):
    """What a user of a CPU-only machine runs: the experiment as configured (trainer=gpu), fast_dev_run on tiny
    data, no accelerator or precision override."""
    from train import train

    cfg = compose("train", ["experiment=zoo/denoise_color", "data=denoise/embedded", "++trainer.fast_dev_run=true",
                            "data.num_workers=0", "data.batch_size=2", "data.train.patch_size=32",
                            "++data.val.crop_size=32", "model.net.width=8", "callbacks=none"])
    with caplog.at_level("WARNING", logger="restore.utils.config"):
        train(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("No GPU found")]
    assert lines == ["No GPU found: running on the CPU with 32-true precision (trainer=gpu asked for accelerator=gpu, "
                     "precision=bf16-mixed; trainer.require_gpu=true makes this an error)"]
