"""train.py's train() and its failure report, in process: resuming needs the checkpoint's own network."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
import torch

from restore.utils.config import ConfigError, compose_config, report_failures

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.max_steps=2", "trainer.val_check_interval=2", "++trainer.limit_val_batches=1", "data.num_workers=0",
        "data.batch_size=2", "++data.val.crop_size=32", "logger=csv", "callbacks.ema.decay=0.9"]


def compose_into(run: Path, overrides: list[str]):
    return compose_config("train", overrides, run, configs_dir=ROOT / "configs")


@pytest.fixture(scope="module")
def train_script(load_root_script):
    return load_root_script("train")


def test_resuming_with_another_network_names_the_checkpoint_the_keys_and_the_ways_on(train_script, tmp_path):
    train_script.train(compose_into(tmp_path / "first", TINY))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"

    cfg = compose_into(tmp_path / "other", [*TINY, "model/net=unireplknet_tiny", f"ckpt_path={last}",
                                            "trainer.max_steps=3"])
    with pytest.raises(ConfigError) as err:
        train_script.train(cfg)
    message = str(err.value)
    assert f"ckpt_path={last} holds another network than model.net" in message
    assert "configs/model/net/unireplknet_tiny.yaml" in message  # where model.net came from
    assert "unexpected keys ['net.encoder.levels.0.0.beta'" in message  # a NAFBlock parameter UniRepLKNet lacks
    assert "shape mismatches" in message
    assert "RestorationUNet(block=NAFBlock, in_channels=3, width=16" in message  # the network it was trained with
    assert f"pretrained={last}" in message and len(message.splitlines()) == 1

    # the checkpoint's own network resumes as before
    train_script.train(compose_into(tmp_path / "same", [*TINY, f"ckpt_path={last}", "trainer.max_steps=3"]))
    assert torch.load(tmp_path / "same" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


class FullDisk(io.RawIOBase):
    """A file whose every write fails as on a full disk (buffered, as ``open(path, "wb")`` is)."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_saving_ends_with_one_line_naming_the_run_folder(tmp_path, capsys, monkeypatch):
    """torch.save reports a full disk as `RuntimeError: … unexpected pos …` (the OSError only as its context)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cfg = compose_into(tmp_path / "run", [])
    with pytest.raises(SystemExit) as exit_:
        with report_failures(cfg):
            torch.save({"w": torch.zeros(100_000)}, io.BufferedWriter(FullDisk()))
    assert exit_.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"NoSpaceError: no space left on {cfg.paths.output_dir}"), last
    assert "unexpected pos" not in last and isinstance(exit_.value.__context__, RuntimeError)  # torch's report


def test_failures_stay_raw_with_hydra_full_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ValueError, match="as it was"):
        with report_failures(compose_into(tmp_path / "run", [])):
            raise ValueError("as it was")
