"""eval.py's evaluate(), in process: the configured network is a fallback only for files that store no config."""

from __future__ import annotations

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
def eval_script(load_root_script):
    return load_root_script("eval")


@pytest.fixture(scope="module")
def evaluate(eval_script):
    return eval_script.evaluate


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


# --- the test data without data=: the checkpoint's training data, a zoo model's test data, else the default

def test_an_all_in_one_checkpoint_is_tested_on_its_training_data_without_data(compose, eval_script, tmp_path):
    """Trained on data=allinone/embedded (three tasks): eval.py without data= reports the three tasks, not the
    default one-row denoising table, and says where the data came from."""
    from omegaconf import open_dict

    from train import train

    cfg = compose("train", ["data=allinone/embedded", "trainer.max_steps=2", "trainer.val_check_interval=2",
                            "data.num_workers=0", "data.batch_size=2", "data.train.0.patch_size=32",
                            "logger=csv", "trainer.accelerator=cpu"])
    with open_dict(cfg):
        for dataset in cfg.data.val:
            dataset.crop_size = 32
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True, mmap=True)["data_config"] == {"name": "allinone/embedded"}
    moved = tmp_path / "elsewhere" / "model.ckpt"  # no run folder beside it: the checkpoint's own record
    moved.parent.mkdir()
    moved.write_bytes(ckpt.read_bytes())

    script = eval_script
    overrides = script.eval_data_overrides([f"ckpt_path={moved}", "data.num_workers=0"])
    assert overrides == ["data=allinone/embedded", "data_source=checkpoint"]
    cfg = compose("eval", [f"ckpt_path={moved}", "data.num_workers=0", *overrides])
    with open_dict(cfg):
        for dataset in cfg.data.val:
            dataset.crop_size = 32
    script.evaluate(cfg)
    out = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert {"denoise", "derain", "dehaze", "average"} <= set(out["metrics"])
    assert out["data"] == "allinone/embedded (from the checkpoint's training config)"
    assert out["checkpoint"] == str(moved) and out["global_step"] == 2
    header = (Path(cfg.paths.output_dir) / "metrics.md").read_text()
    assert f"Checkpoint: `{moved}` (global step 2)." in header
    assert "Data: allinone/embedded (from the checkpoint's training config)." in header


def test_the_data_of_eval_follows_the_command_line_the_zoo_card_or_the_run_folder(eval_script, tmp_path):
    script = eval_script
    assert script.eval_data_overrides(["ckpt_path=allinone_baryir"]) == ["data=allinone/test4",
                                                                          "data_source=model_card"]
    assert script.eval_data_overrides(["ckpt_path=denoise_gray", "save_images=true"]) == [
        "data=denoise/bsd68", "data_source=model_card"]
    for chosen in ("data=denoise/cbsd68", "experiment=deblur/fke_quick", "+data=denoise/cbsd68"):
        assert script.eval_data_overrides(["ckpt_path=allinone_baryir", chosen]) == []
    # a checkpoint of an older run (no data_config): its run folder's Hydra record, read as plain YAML
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".hydra").mkdir()
    torch.save({"state_dict": {}, "global_step": 7}, run / "checkpoints" / "last.ckpt")
    (run / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      data: denoise/bsd68\n")
    assert script.eval_data_overrides([f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]) == [
        "data=denoise/bsd68", "data_source=run_folder"]
    torch.save({"state_dict": {}}, tmp_path / "bare.ckpt")  # nothing recorded: the default data, said so
    assert script.eval_data_overrides([f"ckpt_path={tmp_path / 'bare.ckpt'}"]) == ["data_source=unknown"]


@pytest.mark.parametrize("stored", [{"name": "../../../etc/passwd"}, {"name": {"_target_": "os.system"}},
                                    {"name": "${oc.env:HOME}"}])
def test_a_stored_data_name_that_is_not_one_is_refused(tmp_path, stored):
    from restore.checkpoint import training_record

    torch.save({"state_dict": {}, "data_config": stored}, tmp_path / "odd.ckpt")
    with pytest.raises(UnsafeCheckpointError, match=r"odd.ckpt: the training data it records, .* is not a data "
                                                    r"config name .* refused.*data=<group>/<name>"):
        training_record(tmp_path / "odd.ckpt")
    # in a run folder's Hydra record, an interpolation is refused, never resolved
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".hydra").mkdir()
    torch.save({"state_dict": {}}, run / "checkpoints" / "last.ckpt")
    (run / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      data: ${oc.env:HOME}\n")
    with pytest.raises(UnsafeCheckpointError, match=r"hydra.yaml: the training data it records, '\$\{oc.env:HOME\}'"):
        training_record(run / "checkpoints" / "last.ckpt")
