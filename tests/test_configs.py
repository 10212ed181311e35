"""Every config file instantiates; every experiment runs one batch (`++trainer.fast_dev_run=true`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = ROOT / "configs"
EXPERIMENTS = sorted(str(p.relative_to(CONFIGS / "experiment").with_suffix("")) for p in
                     (CONFIGS / "experiment").rglob("*.yaml"))
NETS = sorted(p.stem for p in (CONFIGS / "model" / "net").glob("*.yaml"))
# data configs that need a dataset on disk are covered by tests/data on temporary folders
LOCAL_DATA = ["denoise/embedded", "allinone/embedded"]


def _semiblind_inputs(tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(tmp / "blurry.png")
    kernel = np.zeros((5, 5))
    kernel[2, :] = 1 / 5
    np.savetxt(tmp / "kernel.txt", kernel)
    return [f"data.image={tmp / 'blurry.png'}", f"data.kernel={tmp / 'kernel.txt'}"]


def _gopro_inputs(tmp: Path) -> list[str]:
    """A two-pair stand-in for GoPro_Large (experiments that train on users' GoPro copies)."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for kind in ("blur", "sharp"):
            path = tmp / "GoPro_Large" / split / "GOPR0001_00" / kind
            path.mkdir(parents=True)
            for k in range(2):
                Image.fromarray((rng.random((72, 80, 3)) * 255).astype(np.uint8)).save(path / f"{k:06d}.png")
    return [f"data.root={tmp / 'GoPro_Large'}", "data.val.crop_size=32"]


@pytest.mark.parametrize("net", NETS)
def test_every_net_config_instantiates(compose, net):
    cfg = compose("train", [f"model/net={net}"])
    module = instantiate(cfg.model)
    assert sum(p.numel() for p in module.net.parameters()) > 0


@pytest.mark.parametrize("group", ["callbacks", "logger"])
def test_callbacks_and_loggers_instantiate(compose, group):
    cfg = compose("train", [])
    built = [instantiate(node) for node in cfg[group].values()]
    assert built


@pytest.mark.parametrize("data", LOCAL_DATA)
def test_data_configs_instantiate(compose, data):
    dm = instantiate(compose("train", [f"data={data}"]).data)
    assert dm.task_names


@pytest.mark.parametrize("trainer", ["default", "cpu", "ddp"])
def test_trainer_configs_compose(compose, trainer):
    cfg = compose("train", [f"trainer={trainer}"])
    assert cfg.trainer._target_.endswith("Trainer")


# a base-size network (~17 s of fast_dev_run on 2 cores); the tiny UniRepLKNet experiment runs the same path by default
@pytest.mark.parametrize("experiment", [pytest.param(e, marks=pytest.mark.slow) if e == "denoise/unireplknet_base_cbsd"
                                        else e for e in EXPERIMENTS])
def test_every_experiment_runs_fast_dev_run(compose, experiment, tmp_path):
    from train import train

    overrides = [f"experiment={experiment}", "++trainer.fast_dev_run=true", "++trainer.accelerator=cpu",
                 "++data.num_workers=0"]
    if experiment.startswith("semiblind/"):
        overrides = overrides[:-1] + _semiblind_inputs(tmp_path)
    else:
        # GPU-sized experiments (bf16, 16×128² batches) would take minutes on one CPU thread:
        # one fp32 step on a small batch still builds and runs every configured object
        overrides += ["++trainer.precision=32-true", "++data.batch_size=2"]
        train_data = compose("train", [f"experiment={experiment}"]).data.train
        if not OmegaConf.is_list(train_data) and str(OmegaConf.select(train_data, "pairs._target_")).endswith(
                "gopro_pairs"):
            overrides += _gopro_inputs(tmp_path)
    cfg = compose("train", overrides)
    if not experiment.startswith("semiblind/"):
        train_sets = cfg.data.train if OmegaConf.is_list(cfg.data.train) else [cfg.data.train]
        with open_dict(cfg):
            for dataset in train_sets:  # all-in-one data: a list of training sets
                dataset.patch_size = 64
    shared = Path(cfg.paths.shared_dir)
    if not shared.is_dir() and "${paths.shared_dir}" in OmegaConf.to_yaml(cfg.data):  # unresolved
        pytest.skip(f"{experiment} validates on ../shared data, absent here ({shared})")
    missing = _missing_dataset(cfg)
    if missing:
        instantiate(cfg.model)  # what can be checked without the data
        pytest.skip(f"{experiment} trains on data absent here ({missing})")
    train(cfg)


def _missing_dataset(cfg) -> str | None:
    """The error of a dataset folder that is not on this machine (real-data GPU experiments), or None."""
    try:
        instantiate(cfg.data)
    except Exception as err:  # noqa: BLE001 - Hydra wraps the dataset's own error
        cause = err
        while cause is not None and not isinstance(cause, FileNotFoundError):
            cause = cause.__cause__
        if cause is None:
            raise
        return str(cause)
    return None


def test_default_train_config_is_the_cpu_default_experiment(compose):
    cfg = compose("train", [])
    assert cfg.task_name == "denoise_nafnet_tiny" and cfg.cpu_threads == 1
    assert cfg.model.net._target_.endswith("RestorationUNet") and cfg.model.net.channels_last
    assert cfg.data.train._target_.endswith("EmbeddedImagesDataset") and cfg.data.val.split == "val"
    module, data = instantiate(cfg.model), instantiate(cfg.data)
    assert sum(p.numel() for p in module.net.parameters()) < 400_000  # tiny enough for a CPU run
    assert data.task_names


def test_cpu_threads_sets_torch_threads(compose):
    from train import train

    cfg = compose("train", ["cpu_threads=2", "++trainer.fast_dev_run=true", "++trainer.accelerator=cpu",
                            "++data.num_workers=0", "++data.batch_size=2", "++data.val.crop_size=64"])
    try:
        train(cfg)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)  # the test session's setting (conftest)


def test_eval_config_requires_checkpoint(compose):
    from omegaconf.errors import MissingMandatoryValue

    cfg = compose("eval", [])
    with pytest.raises(MissingMandatoryValue):
        _ = cfg.ckpt_path


def test_wrong_target_names_the_config_file(compose):
    from restore.utils.config import ConfigError, instantiate_node

    cfg = compose("train", ["model/net=nafnet_tiny", "model.net._target_=restore.models.nafnet.no_such_net"])
    with pytest.raises(ConfigError, match=r"configs/model/net/nafnet_tiny.yaml"):
        instantiate_node(cfg, "model.net")
