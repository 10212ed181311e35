"""Two-player BaryIR training: each player's step moves only its own parameters; steps, resume,
EMA, AMP and checkpoints behave as for every other model."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from test_callbacks import ScaledAfter
from torch.utils.data import DataLoader, Dataset

import restore
from restore.data import RestorationDataModule
from restore.lightning import (
    BaryIRModule,
    DivergenceError,
    DivergenceGuard,
    NonFiniteLossError,
    ResumeOverrides,
    warmup_cosine,
)
from restore.losses import RestorationLoss
from restore.models.baryir import BaryIRNet, KantorovichPotentials
from restore.models.nafnet import NAFBlock

NET_CONFIG = {"_target_": "restore.models.baryir.BaryIRNet",
              "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}, "in_channels": 3, "width": 8,
              "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1]}
SOURCES = ["denoise", "derain", "dehaze"]


class MultiTaskPairs(Dataset):
    """Smooth images + a task-dependent degradation; task i % 3 (or ``task`` for all)."""

    def __init__(self, n: int = 6, size: int = 32, seed: int = 0, task: int | None = None, task_name: str = "x"):
        g = torch.Generator().manual_seed(seed)
        base = torch.rand(n, 3, size // 4, size // 4, generator=g)
        self.gt = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
        self.tasks = [i % 3 if task is None else task for i in range(n)]
        noise = torch.randn(self.gt.shape, generator=g)
        self.lq = torch.stack([self.gt[i] + 0.1 * noise[i] if t == 0 else self.gt[i] * 0.6 + 0.3 * (t == 2)
                               for i, t in enumerate(self.tasks)])
        self.task_name = task_name

    def __len__(self) -> int:
        return len(self.gt)

    def __getitem__(self, i: int) -> dict:
        return {"lq": self.lq[i], "gt": self.gt[i], "task": self.tasks[i], "name": f"img{i:03d}"}


class FixedOrderData(L.LightningDataModule):
    def __init__(self, train, val, batch_size=3):
        super().__init__()
        self.train, self.val, self.batch_size = train, val, batch_size
        self.task_names = SOURCES

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=1)


def make_module(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = {k: v for k, v in NET_CONFIG.items() if k not in ("_target_", "block")}
    defaults = dict(
        net=BaryIRNet(NAFBlock, **cfg), loss=RestorationLoss(torch.nn.L1Loss()),
        optimizer=partial(torch.optim.AdamW, lr=2e-3), potential_optimizer=partial(torch.optim.RMSprop, lr=1e-3),
        scheduler=partial(warmup_cosine, warmup_steps=2, min_lr=1e-5), potential_scheduler=None,
        sources=SOURCES, potentials=partial(KantorovichPotentials, grid=2),
        # a WB weight large enough that the heads' terms move the weights visibly in a few steps
        wb_weight=0.1, metrics=[{"protocol": "rgb"}], net_config=NET_CONFIG, gradient_clip_val=0.5)
    defaults.update(kw)
    return BaryIRModule(**defaults)


def make_trainer(root, max_steps, callbacks=(), **kw):
    return L.Trainer(default_root_dir=root, max_steps=max_steps, accelerator="cpu", devices=1, logger=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
                     num_sanity_val_steps=0, check_val_every_n_epoch=None, **kw)


def data(n=6, batch_size=3):
    return FixedOrderData(MultiTaskPairs(n), MultiTaskPairs(3, seed=1), batch_size)


def snapshot(module):
    return {"net": [p.detach().clone() for p in module.net.parameters()],
            "potentials": [p.detach().clone() for p in module.potentials.parameters()]}


def changed(a, b):
    return any(not torch.equal(x, y) for x, y in zip(a, b))


def test_each_players_step_moves_only_its_own_parameters(tmp_path):
    class Recording(BaryIRModule):
        snapshots = []

        def on_before_optimizer_step(self, optimizer):
            super().on_before_optimizer_step(optimizer)
            Recording.snapshots.append(snapshot(self))

        def on_train_batch_end(self, *args):
            Recording.snapshots.append(snapshot(self))

    module = make_module()
    module.__class__ = Recording
    trainer = make_trainer(tmp_path, 2, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(module, data())
    assert trainer.global_step == 2  # the potential step is not counted: one step per batch
    shots = Recording.snapshots
    assert len(shots) == 6  # (before generator step, before potential step, after batch) × 2 batches
    for before_gen, before_pot, after in (shots[0:3], shots[3:6]):
        assert changed(before_gen["net"], before_pot["net"])
        assert not changed(before_gen["potentials"], before_pot["potentials"])  # generator step
        assert not changed(before_pot["net"], after["net"])  # potential step
        assert changed(before_pot["potentials"], after["potentials"])


def test_losses_are_the_weighted_terms_and_training_lowers_the_restoration_loss(tmp_path):
    module = make_module()
    module.source_weights = torch.tensor([0.5, 0.3, 0.2])
    batch = next(iter(DataLoader(MultiTaskPairs(6), batch_size=6)))
    sources = batch["task"]
    with torch.no_grad():
        pred, z_s, z_b, z_r = module.net.forward_latents(batch["lq"])
        gen = module.generator_loss(pred, batch["gt"], z_s, z_b, z_r, sources)
        f = module.potentials(z_b)
    lam = module.source_weights[sources]
    own = f[torch.arange(6), sources]
    from restore.models.baryir import barycenter_distance, contrastive_loss, orthogonality_loss
    per_sample = (barycenter_distance(z_s, z_b) + 0.05 * orthogonality_loss(z_b, z_r)
                  + 0.05 * contrastive_loss(z_r, sources) - own)
    expected = torch.nn.functional.l1_loss(pred, batch["gt"]) + 0.1 * (lam * per_sample).mean()
    torch.testing.assert_close(gen["loss"], expected)
    pot = module.potential_loss(z_b, sources)
    congruence = ((f * module.source_weights).sum(1) ** 2).mean()
    torch.testing.assert_close(pot["loss"], (lam * own).mean() + 10 * congruence)

    before = gen["restoration"].item()
    trainer = make_trainer(tmp_path, 30, enable_checkpointing=False, val_check_interval=30)
    trainer.fit(module, FixedOrderData(MultiTaskPairs(6), MultiTaskPairs(3, seed=1), 6))
    with torch.no_grad():
        after = module.loss(module.net(batch["lq"]), batch["gt"]).item()
    assert after < 0.8 * before
    for key in ("val/psnr", "val/derain/psnr", "train/congruence", "train/contrastive"):
        assert key in trainer.callback_metrics, key


def test_source_weights_are_inverse_task_frequency_of_the_training_set(tmp_path):
    dm = RestorationDataModule(
        train=[MultiTaskPairs(6, task=0, task_name="denoise"), MultiTaskPairs(2, task=0, task_name="derain"),
               MultiTaskPairs(3, task=0, task_name="dehaze")],
        val=MultiTaskPairs(2, task=0, task_name="val_set"), batch_size=2, num_workers=0)
    module = make_module()
    trainer = make_trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(module, dm)
    inv = torch.tensor([1 / 6, 1 / 2, 1 / 3])
    torch.testing.assert_close(module.source_weights, inv / inv.sum())
    # a training task that is not a source is named
    with pytest.raises(ValueError, match=r"'derain' is not one of the BaryIR sources"):
        make_trainer(tmp_path, 1, enable_checkpointing=False, limit_val_batches=0).fit(
            make_module(sources=["denoise", "dehaze"]), dm)


def test_resume_from_last_checkpoint_equals_straight_run(tmp_path):
    """Both optimisers, both schedules, the potentials and the EMA come back from last.ckpt."""
    n = 4

    class Interrupt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == n // 2:
                trainer.should_stop = True

    def run(root, ckpt_path=None, interrupt=False):
        L.seed_everything(0)
        module = make_module(seed=1, potential_scheduler=partial(warmup_cosine, warmup_steps=2, min_lr=1e-5))
        callbacks = [EMAWeightAveraging(decay=0.9),
                     ModelCheckpoint(dirpath=root / "ckpt", save_last=True, every_n_train_steps=n // 2)]
        trainer = make_trainer(root, n, callbacks=callbacks + ([Interrupt()] if interrupt else []),
                               limit_val_batches=0)
        trainer.fit(module, data(n=6, batch_size=3), ckpt_path=ckpt_path)  # 2 batches per epoch
        return module, trainer

    straight, t1 = run(tmp_path / "a")
    _, t_half = run(tmp_path / "b", interrupt=True)
    assert t_half.global_step == n // 2
    saved = torch.load(tmp_path / "b" / "ckpt" / "last.ckpt", weights_only=True)
    assert len(saved["optimizer_states"]) == 2 and len(saved["lr_schedulers"]) == 2
    assert any(k.startswith("potentials.") for k in saved["current_model_state"])
    resumed, t2 = run(tmp_path / "c", ckpt_path=tmp_path / "b" / "ckpt" / "last.ckpt")
    assert t2.global_step == t1.global_step == n
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    for o1, o2 in zip(t1.optimizers, t2.optimizers):
        assert o1.param_groups[0]["lr"] == pytest.approx(o2.param_groups[0]["lr"])


class LearningRates(L.Callback):
    """Each optimiser's base and current lr as the batch of ``at_step`` starts; stops the run after it."""

    def __init__(self, at_step):
        self.at_step, self.initial, self.current = at_step, None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            self.initial = [o.param_groups[0]["initial_lr"] for o in trainer.optimizers]
            self.current = [o.param_groups[0]["lr"] for o in trainer.optimizers]

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.at_step + 1:
            trainer.should_stop = True


@pytest.mark.parametrize("player, key, old, new", [
    ("optimizer", "model.optimizer", 2e-3, 5e-4), ("potential_optimizer", "model.potential_optimizer", 1e-3, 2e-4)])
def test_resume_with_a_new_lr_for_either_player_takes_effect_and_is_logged(tmp_path, caplog, player, key, old, new):
    """The README's promise (configured values win on resume) for both players: the new lr and its schedule
    continue as if the run had used the new value from the start; the other player keeps its own."""
    factories = {"optimizer": torch.optim.AdamW, "potential_optimizer": torch.optim.RMSprop}

    def run(root, lr=None, ckpt_path=None):
        L.seed_everything(0)
        kw = {} if lr is None else {player: partial(factories[player], lr=lr)}
        module = make_module(seed=1, potential_scheduler=partial(warmup_cosine, warmup_steps=2, min_lr=1e-5), **kw)
        probe, overrides = LearningRates(at_step=2), ResumeOverrides()
        callbacks = [probe, overrides, ModelCheckpoint(dirpath=root / "ckpt", save_last=True, every_n_train_steps=2)]
        make_trainer(root, 6, callbacks=callbacks, limit_val_batches=0).fit(module, data(), ckpt_path=ckpt_path)
        return probe, overrides

    run(tmp_path / "a")  # its last.ckpt is at step 2
    with caplog.at_level("WARNING"):
        resumed, overrides = run(tmp_path / "b", lr=new, ckpt_path=tmp_path / "a" / "ckpt" / "last.ckpt")
    assert overrides.applied == [(f"{key}.lr", old, new)]
    assert f"{key}.lr: {old} → {new}" in caplog.text
    mine, other = (0, 1) if player == "optimizer" else (1, 0)
    assert resumed.initial[mine] == new and resumed.initial[other] == {0: 2e-3, 1: 1e-3}[other]
    straight, _ = run(tmp_path / "c", lr=new)  # the new value from the start
    assert resumed.current == pytest.approx(straight.current, rel=1e-12)


def test_divergence_stops_a_baryir_run_before_the_step_is_applied(tmp_path):
    """The generator's loss blows up at step 3: neither player's step of that batch is applied."""

    class Snapshot(L.Callback):
        def on_train_batch_start(self, trainer, module, *args):
            self.before = snapshot(module)

    module, snap = make_module(loss=RestorationLoss(ScaledAfter(after=3, factor=1e6))), Snapshot()
    trainer = make_trainer(tmp_path, 10, callbacks=[DivergenceGuard(), snap], enable_checkpointing=False,
                           limit_val_batches=0)
    with pytest.raises(DivergenceError, match=r"Generator loss .* at global step 3 .*model.optimizer.lr="):
        trainer.fit(module, data())
    after = snapshot(module)
    assert not changed(snap.before["net"], after["net"]) and not changed(snap.before["potentials"], after["potentials"])

    # the potentials' loss (signed) stops on NaN, before the potentials' step, naming their optimiser
    module, snap = make_module(), Snapshot()
    potential_loss = module.potential_loss
    module.potential_loss = lambda z_b, sources: {k: v * float("nan") if module.global_step >= 2 else v
                                                  for k, v in potential_loss(z_b, sources).items()}
    trainer = make_trainer(tmp_path, 10, callbacks=[DivergenceGuard(), snap], enable_checkpointing=False,
                           limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match=r"Potential loss is nan .*model.potential_optimizer.lr="):
        trainer.fit(module, data())
    assert not changed(snap.before["potentials"], snapshot(module)["potentials"])


def test_bad_potential_optimizer_values_are_named_at_start_up():
    with pytest.raises(ValueError, match=r"model.potential_optimizer is invalid: Invalid learning rate: -1.0"):
        make_module(potential_optimizer=partial(torch.optim.RMSprop, lr=-1.0))
    with pytest.raises(ValueError, match=r"model.potential_scheduler.warmup_steps must be a number, got 'ten'"):
        make_module(potential_scheduler=partial(warmup_cosine, warmup_steps="ten"))


def test_checkpoint_round_trip_loads_the_inference_network_without_potentials(tmp_path):
    module = make_module()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2)
    trainer = make_trainer(tmp_path, 2, callbacks=[EMAWeightAveraging(decay=0.5), ckpt], limit_val_batches=0)
    trainer.fit(module, data())
    x = torch.rand(1, 3, 29, 35)
    module.net.eval()
    with torch.no_grad():
        net = restore.load_model(tmp_path / "ckpt" / "last.ckpt")
        assert isinstance(net, BaryIRNet)
        torch.testing.assert_close(net(x), module.net(x), rtol=0, atol=0)
        restored = restore.restore_image(net, x[0])
        assert restored.shape == x[0].shape
        exported = restore.export_model(net, tmp_path / "net.safetensors")
        again = restore.load_model(exported)
        assert not any("potential" in k for k in again.state_dict())
        torch.testing.assert_close(again(x), net(x), rtol=0, atol=0)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert saved["baryir"]["sources"] == SOURCES


def test_bf16_mixed_precision_trains_on_cpu(tmp_path):
    module = make_module()
    trainer = make_trainer(tmp_path, 2, precision="bf16-mixed", enable_checkpointing=False, limit_val_batches=1,
                           val_check_interval=2)
    trainer.fit(module, data())
    assert torch.isfinite(trainer.callback_metrics["val/psnr"])
    assert torch.isfinite(trainer.callback_metrics["train/potential_loss"])


def test_a_plain_network_is_refused_with_a_pointer_to_restoration_module():
    from restore.models.unet import RestorationUNet

    with pytest.raises(TypeError, match="RestorationModule"):
        make_module(net=RestorationUNet(NAFBlock, width=8, enc_blocks=(1,), dec_blocks=(1,)))
