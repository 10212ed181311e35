"""Checkpoints survive kills: atomic writes, named read errors, last.ckpt on Ctrl-C (not on NaN)."""

import os

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from test_callbacks import ScaledAfter
from test_module import datamodule, make_module, make_trainer

from restore.errors import DamagedFileError
from restore.lightning import (
    AtomicCheckpointIO,
    CheckpointReadError,
    DivergenceGuard,
    InterruptCheckpoint,
    NonFiniteLossError,
)


def test_a_write_killed_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)

    def dies_midway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # or SIGTERM, disk full...

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left
    assert io.load_checkpoint(path, weights_only=True)["global_step"] == 1
    # a temporary file left by a process killed with SIGKILL goes at the next save of that name
    (tmp_path / ".last.ckpt.abc123.tmp").write_bytes(b"partial")
    io.save_checkpoint({"global_step": 3}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"PK\x03\x04" + os.urandom(200), "Cannot read"),
                                             (b"\x80\x02" + os.urandom(64), "Cannot read")])
def test_resuming_from_a_broken_checkpoint_names_it(tmp_path, pair_dataset, content, reason):
    broken = tmp_path / "last.ckpt"
    broken.write_bytes(content)
    trainer = make_trainer(tmp_path, 2, limit_val_batches=0, enable_checkpointing=False,
                           plugins=[AtomicCheckpointIO()])
    with pytest.raises(CheckpointReadError, match=reason) as err:
        trainer.fit(make_module(), datamodule(pair_dataset), ckpt_path=broken)
    assert str(broken) in str(err.value) and "weights_only=False" not in str(err.value)


def test_the_trainer_config_writes_checkpoints_atomically(compose):
    from hydra.utils import instantiate

    trainer = instantiate(compose("train", []).trainer)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


class InterruptAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


def test_ctrl_c_saves_last_ckpt_at_that_step_and_the_run_resumes(tmp_path, pair_dataset, sigint_restored):
    dm, ckpt_dir = datamodule(pair_dataset), tmp_path / "ckpt"

    def callbacks():
        return [ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=100), InterruptCheckpoint()]

    trainer = make_trainer(tmp_path, 10, callbacks=callbacks() + [InterruptAt(3)], limit_val_batches=0,
                           plugins=[AtomicCheckpointIO()])
    module = make_module()
    with pytest.raises(SystemExit):  # Lightning's graceful shutdown on KeyboardInterrupt
        trainer.fit(module, dm)
    saved = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 3
    torch.testing.assert_close(saved["state_dict"]["net.intro.weight"], module.net.intro.weight)
    resumed = make_trainer(tmp_path, 10, callbacks=callbacks(), limit_val_batches=0)
    resumed.fit(make_module(), dm, ckpt_path=ckpt_dir / "last.ckpt")
    assert resumed.global_step == 10


def test_a_nan_stop_saves_nothing_over_the_last_good_checkpoint(tmp_path, pair_dataset):
    ckpt_dir = tmp_path / "ckpt"
    callbacks = [ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=2), InterruptCheckpoint(),
                 DivergenceGuard()]
    trainer = make_trainer(tmp_path, 10, callbacks=callbacks, limit_val_batches=0)
    with pytest.raises(NonFiniteLossError):
        trainer.fit(make_module(loss=ScaledAfter(3, float("nan"))), datamodule(pair_dataset))
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=True)["global_step"] == 2


def test_a_damaged_checkpoint_is_never_resumed_from(tmp_path, pair_dataset, damage_weights):
    """The digest AtomicCheckpointIO stores is checked when Lightning loads the file to resume."""
    ckpt_dir = tmp_path / "ckpt"
    callbacks = [ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=2)]
    make_trainer(tmp_path, 2, callbacks=callbacks, limit_val_batches=0, plugins=[AtomicCheckpointIO()]).fit(
        make_module(), datamodule(pair_dataset))
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=True)["weights_digest"].startswith("sha256:")
    damage_weights(ckpt_dir / "last.ckpt")
    resumed = make_trainer(tmp_path, 4, limit_val_batches=0, plugins=[AtomicCheckpointIO()])
    with pytest.raises(DamagedFileError, match=r"last\.ckpt was modified or damaged: digest mismatch.*another "
                                               r"checkpoint"):
        resumed.fit(make_module(), datamodule(pair_dataset), ckpt_path=ckpt_dir / "last.ckpt")
    assert resumed.global_step == 0
