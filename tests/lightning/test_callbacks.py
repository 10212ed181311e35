"""The training guards (restore/lightning/callbacks.py): DivergenceGuard stops before a step is applied, from the
first losses on, and names a last-good checkpoint the advice recovers from; ResumeOverrides makes the configured
optimizer and scheduler values win on resume."""

import re
from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from test_module import NET_CONFIG, datamodule, make_module, make_trainer

from restore.lightning import (
    AtomicCheckpointIO,
    DivergenceError,
    DivergenceGuard,
    NonFiniteLossError,
    RestorationModule,
    ResumeOverrides,
    warmup_cosine,
)
from restore.losses import RestorationLoss
from restore.models.nafnet import NAFBlock
from restore.models.unet import RestorationUNet


class ScaledAfter(torch.nn.L1Loss):
    """L1, multiplied by ``factor`` from call ``after`` on (a training run blowing up, or NaN)."""

    def __init__(self, after, factor):
        super().__init__()
        self.after, self.factor, self.calls = after, factor, 0

    def forward(self, pred, target):
        self.calls += 1
        loss = super().forward(pred, target)
        return loss * self.factor if self.calls > self.after else loss


class WeightsAtBatchStart(L.Callback):
    """The module's parameters as each training batch starts."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.params = {name: p.detach().clone() for name, p in module.named_parameters()}


def assert_unchanged(module, snapshot):
    for name, p in module.named_parameters():
        assert torch.equal(p, snapshot.params[name]), f"{name} changed by the step that was stopped"


def stored_step(path):
    return torch.load(path, weights_only=True)["global_step"]


def test_nan_loss_stops_before_the_step_and_names_the_last_good_checkpoint(tmp_path, pair_dataset):
    module, weights = make_module(loss=ScaledAfter(4, float("nan"))), WeightsAtBatchStart()
    callbacks = [DivergenceGuard(judge_steps=1), weights,
                 ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2)]
    trainer = make_trainer(tmp_path, 10, callbacks=callbacks, limit_val_batches=0, plugins=[AtomicCheckpointIO()])
    with pytest.raises(NonFiniteLossError, match="Loss is nan at global step 4") as err:
        trainer.fit(module, datamodule(pair_dataset))
    assert_unchanged(module, weights)
    # step 4's weights gave the NaN: the good one is step 2's, kept as last_good.ckpt though last.ckpt moved on
    good = tmp_path / "ckpt" / "last_good.ckpt"
    assert f"is {good} (step 2); resume from it" in str(err.value)
    assert re.search(rf"ckpt_path={good} model.optimizer.lr=\d", str(err.value))
    assert stored_step(good) == 2 and stored_step(tmp_path / "ckpt" / "last.ckpt") == 4
    assert all(torch.isfinite(v).all() for v in torch.load(good, weights_only=True)["state_dict"].values())


def test_nan_before_any_checkpoint_says_none_exists_and_to_start_again(tmp_path, pair_dataset):
    module = make_module(loss=ScaledAfter(1, float("nan")))
    callbacks = [DivergenceGuard(), ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=5)]
    trainer = make_trainer(tmp_path, 10, callbacks=callbacks, limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match="global step 1") as err:
        trainer.fit(module, datamodule(pair_dataset))
    message = str(err.value)
    assert "No checkpoint has been written yet" in message and str(tmp_path / "ckpt") in message
    # the command to run next: the overrides alone, after this run's command line when Hydra composed one
    assert re.search(r"start again with a lower learning rate: (python .*)?model\.optimizer\.lr=", message)
    assert "ckpt_path=" not in message and not (tmp_path / "ckpt" / "last.ckpt").exists()


def test_a_resumed_run_names_the_checkpoint_it_resumed_from_once_it_proved_good(tmp_path, pair_dataset):
    dm, last = datamodule(pair_dataset), tmp_path / "a" / "ckpt" / "last.ckpt"
    make_trainer(tmp_path / "a", 2, callbacks=[ModelCheckpoint(dirpath=last.parent, save_last=True)],
                 limit_val_batches=0).fit(make_module(), dm)
    trainer = make_trainer(tmp_path / "b", 10, callbacks=[DivergenceGuard(judge_steps=2)], limit_val_batches=0,
                           enable_checkpointing=False)
    with pytest.raises(NonFiniteLossError, match=rf"Loss is nan at global step 5 .* is {last} \(step 2\)"):
        trainer.fit(make_module(loss=ScaledAfter(3, float("nan"))), dm, ckpt_path=last)


def test_divergence_stops_before_the_step_is_applied_or_saved(tmp_path, pair_dataset):
    """A loss 1e6× its running median stops the run like a NaN, before that step is applied or saved."""
    module, weights = make_module(loss=ScaledAfter(6, 1e6)), WeightsAtBatchStart()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2)
    trainer = make_trainer(tmp_path, 20, callbacks=[DivergenceGuard(window=10), weights, ckpt], limit_val_batches=0)
    with pytest.raises(DivergenceError, match=r"median of the last 6 losses .* at global step 6 .*"
                                              r"callbacks.divergence_guard.factor"):
        trainer.fit(module, datamodule(pair_dataset))
    assert_unchanged(module, weights)
    assert stored_step(tmp_path / "ckpt" / "last.ckpt") == 6 and trainer.global_step == 6


def test_the_guard_is_armed_from_the_second_loss(tmp_path, pair_dataset):
    with pytest.raises(DivergenceError, match=r"median of the last 1 losses .* at global step 1 "):
        make_trainer(tmp_path, 10, callbacks=[DivergenceGuard()], limit_val_batches=0, enable_checkpointing=False).fit(
            make_module(loss=ScaledAfter(1, 1e4)), datamodule(pair_dataset))
    # a healthy run's batch-to-batch variation never trips it, even with a factor of 3 and a short window
    healthy = make_module()
    make_trainer(tmp_path / "h", 12, callbacks=[DivergenceGuard(factor=3, window=4)], enable_checkpointing=False,
                 limit_val_batches=0).fit(healthy, datamodule(pair_dataset, sigma=0.2))


def test_under_fp16_amp_the_losses_are_compared_unscaled(tmp_path, pair_dataset):
    """Lightning hands on_before_backward the loss times the GradScaler's scale (65536 here): the guard divides
    it out, so its medians and messages are in the loss's own units."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    amp = MixedPrecision("16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 16))
    trainer = make_trainer(tmp_path, 10, callbacks=[DivergenceGuard()], plugins=[amp], enable_checkpointing=False,
                           limit_val_batches=0)
    with pytest.raises(DivergenceError, match=r"at global step 2 ") as err:
        trainer.fit(make_module(loss=ScaledAfter(2, 1e4)), datamodule(pair_dataset))
    value, median = map(float, re.search(r"Loss (\S+) is more .* losses \((\S+)\)", str(err.value)).groups())
    assert 0.01 < median < 1 and 100 < value < 1e4


def ramped_module(lr, seed=0):
    """A learning rate ramping up linearly from lr/1000 over 200 steps: fine at first, diverging after a few."""
    torch.manual_seed(seed)
    cfg = {k: v for k, v in NET_CONFIG.items() if k not in ("_target_", "block")}
    return RestorationModule(net=RestorationUNet(NAFBlock, **cfg), loss=RestorationLoss(torch.nn.L1Loss()),
                             optimizer=partial(torch.optim.AdamW, lr=lr, weight_decay=1e-4),
                             scheduler=partial(warmup_cosine, warmup_steps=200, min_lr=1e-5), net_config=NET_CONFIG)


def test_a_diverging_lr_names_a_healthy_checkpoint_and_the_advice_recovers(tmp_path, pair_dataset):
    """lr 2 (ramped): the loss leaves its band at step ~6 and the guard stops at step ~10. The checkpoints written
    after the loss left its band are not named; resuming exactly as the message says trains normally."""
    dm = datamodule(pair_dataset, n=16, batch_size=4, sigma=0.2)

    def callbacks(root):
        return [DivergenceGuard(judge_steps=2), ResumeOverrides(),
                ModelCheckpoint(dirpath=root / "ckpt", save_last=True, every_n_train_steps=2)]

    trainer = make_trainer(tmp_path / "a", 400, callbacks=callbacks(tmp_path / "a"), limit_val_batches=0)
    with pytest.raises(DivergenceError) as err:
        trainer.fit(ramped_module(lr=2.0), dm)
    message, good = str(err.value), tmp_path / "a" / "ckpt" / "last_good.ckpt"
    resume = re.search(r"resume from it with a lower learning rate: ckpt_path=(\S+) model.optimizer.lr=(\S+) ", message)
    assert resume and resume.group(1) == str(good), message
    assert 0 < stored_step(good) < stored_step(tmp_path / "a" / "ckpt" / "last.ckpt") <= trainer.global_step
    lr = float(resume.group(2))
    assert lr < 2.0 / 10
    resumed = make_trainer(tmp_path / "b", stored_step(good) + 30, callbacks=callbacks(tmp_path / "b"),
                           val_check_interval=30)
    resumed.fit(ramped_module(lr=lr), dm, ckpt_path=good)
    metrics = resumed.callback_metrics
    assert metrics["val/psnr"] > metrics["val/psnr_input"]


def test_resume_with_a_lower_lr_applies_it_and_logs_it(tmp_path, pair_dataset, caplog):
    """The advice (resume with a lower model.optimizer.lr) works: the configured lr and schedule win over the
    checkpoint's, exactly as if the run had used them from the start."""
    dm = datamodule(pair_dataset, n=8, batch_size=2)

    class Probe(L.Callback):
        """Records the lr where a run starts and at step 4; stops the run after `stop_at` steps."""

        def __init__(self, stop_at=None):
            self.stop_at = stop_at

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if not hasattr(self, "start_lr"):
                self.start_lr = trainer.optimizers[0].param_groups[0]["lr"]
                self.initial = trainer.optimizers[0].param_groups[0]["initial_lr"]
            if trainer.global_step == 4:
                self.lr_at_4 = trainer.optimizers[0].param_groups[0]["lr"]

        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == self.stop_at:
                trainer.should_stop = True

    def run(root, ckpt_path=None, stop_at=None, **kw):
        probe, overrides = Probe(stop_at), ResumeOverrides()
        callbacks = [probe, overrides, ModelCheckpoint(dirpath=root / "ckpt", save_last=True, every_n_train_steps=4)]
        make_trainer(root, 8, callbacks=callbacks, limit_val_batches=0).fit(make_module(seed=1, **kw), dm,
                                                                            ckpt_path=ckpt_path)
        return overrides, probe

    run(tmp_path / "a", stop_at=4, lr=2e-3)  # the run that "blew up"; its last.ckpt is at step 4
    last = tmp_path / "a" / "ckpt" / "last.ckpt"
    same, probe_same = run(tmp_path / "b", ckpt_path=last, lr=2e-3)
    assert same.applied == []
    with caplog.at_level("WARNING"):
        resumed, probe = run(tmp_path / "c", ckpt_path=last, lr=5e-4, min_lr=1e-6)
    assert ("model.optimizer.lr", 2e-3, 5e-4) in resumed.applied
    assert any("eta_min" in key for key, *_ in resumed.applied), resumed.applied
    assert "model.optimizer.lr: 0.002 → 0.0005" in caplog.text
    assert probe.initial == 5e-4 and probe_same.initial == 2e-3
    _, straight = run(tmp_path / "d", stop_at=5, lr=5e-4, min_lr=1e-6)  # the new values from the start
    assert probe.start_lr == pytest.approx(straight.lr_at_4, rel=1e-12)
    assert probe.start_lr < 0.5 * probe_same.start_lr


def test_a_run_without_the_guards_says_so(tmp_path, pair_dataset):
    with pytest.warns(UserWarning, match="No DivergenceGuard: a NaN or diverging loss will not stop the run"):
        make_trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0).fit(
            make_module(), datamodule(pair_dataset))


@pytest.mark.parametrize("kwargs, message", [
    ({"factor": 1}, "factor must be a number > 1 or null"), ({"band": "3"}, "band must be a number > 1"),
    ({"window": 0}, "window must be an integer >= 1"), ({"judge_steps": 2.5}, "judge_steps must be an integer"),
    ({"last_good": "last"}, "last_good must be a file name other than 'last'")])
def test_bad_guard_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=f"callbacks.divergence_guard.{message}"):
        DivergenceGuard(**kwargs)
