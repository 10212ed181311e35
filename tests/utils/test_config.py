"""Run folders never shared; config errors name the file (or command line) that set the failing node."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from restore.utils.config import ConfigError, instantiate_node, unique_run_dir

ROOT = Path(__file__).resolve().parents[2]


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
