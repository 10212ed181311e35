"""eval.py's evaluate(), in process: the configured network is a fallback only for files that store no config."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import save_file

import restore
from restore.checkpoint import NonFiniteWeightsError, UnsafeCheckpointError
from restore.utils.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def evaluate():
    spec = importlib.util.spec_from_file_location("eval_script", ROOT / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate


EVAL = ["data.num_workers=0", "++data.val.crop_size=32", "++trainer.limit_test_batches=1"]


def test_refused_config_ends_eval_without_falling_back(compose, evaluate, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "evil.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={
        "net_config": json.dumps({"_target_": "builtins.open", "file": str(victim), "mode": "w"})})
    cfg = compose("eval", [f"ckpt_path={path}", *EVAL])
    with pytest.raises(UnsafeCheckpointError, match="evil.safetensors.*builtins.open"):
        evaluate(cfg)
    assert victim.read_text() == "precious"


def test_non_finite_weights_end_eval(compose, evaluate, tmp_path):
    cfg = compose("eval", ["ckpt_path=unset", *EVAL])
    net = instantiate(cfg.model.net)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["intro.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "diverged.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, path)  # no net_config: fallback path
    cfg = compose("eval", [f"ckpt_path={path}", *EVAL])
    with pytest.raises(NonFiniteWeightsError, match="diverged.ckpt.*intro.weight"):
        evaluate(cfg)


def test_corrupt_file_ends_eval(compose, evaluate, tmp_path):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(b"not a checkpoint" * 10)
    cfg = compose("eval", [f"ckpt_path={path}", *EVAL])
    with pytest.raises(OSError, match="broken.ckpt") as err:
        evaluate(cfg)
    assert "weights_only" not in str(err.value)


def test_file_without_config_falls_back_to_the_configured_net(compose, evaluate, tmp_path):
    cfg = compose("eval", ["ckpt_path=unset", *EVAL])
    path = tmp_path / "bare.ckpt"
    torch.save({"params": instantiate(cfg.model.net).state_dict()}, path)  # BasicSR-style bare weights
    metrics = evaluate(compose("eval", [f"ckpt_path={path}", *EVAL]))
    assert any("psnr" in k for k in metrics)


def test_gray_network_on_rgb_data_names_both_and_the_fix(compose, evaluate, tmp_path):
    net = restore.create_model("nafnet_tiny", in_channels=1, width=8)
    path = restore.export_model(net, tmp_path / "gray.safetensors")
    cfg = compose("eval", [f"ckpt_path={path}", *EVAL])  # data=denoise/embedded: RGB
    with pytest.raises(ConfigError) as err:
        evaluate(cfg)
    message = str(err.value)
    assert f"the network in {path} takes 1-channel (gray) images" in message
    assert "gives 3-channel (RGB) ones" in message and "data/denoise/embedded.yaml (data=denoise/embedded)" in message
    assert "data=denoise/bsd68" in message


def test_a_900_deep_stored_config_is_refused_with_its_depth(compose, evaluate, tmp_path):
    config = node = {"_target_": "restore.models.unet.RestorationUNet"}
    for _ in range(900):
        node["block"] = {"width": 8}
        node = node["block"]
    path = tmp_path / "deep.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"net_config": json.dumps(config)})
    cfg = compose("eval", [f"ckpt_path={path}", *EVAL])
    with pytest.raises(UnsafeCheckpointError, match="deep.safetensors: the stored network config is nested more than "
                                                    "32 levels deep"):
        evaluate(cfg)
