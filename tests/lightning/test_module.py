from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

import restore
from restore.lightning import NonFiniteOutputError, RestorationModule, warmup_cosine
from restore.losses import RestorationLoss
from restore.metrics import ImageQualityMetrics
from restore.models.nafnet import NAFBlock
from restore.models.unet import RestorationUNet

NET_CONFIG = {"_target_": "restore.models.unet.RestorationUNet",
              "block": {"_target_": "restore.models.nafnet.NAFBlock", "_partial_": True}, "in_channels": 3, "width": 8,
              "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1]}


def make_module(seed=0, lr=2e-3, loss=None, metrics=({"protocol": "rgb"}, {"protocol": "y", "crop_border": 2}),
                min_lr=1e-5, **kw):
    torch.manual_seed(seed)
    cfg = {k: v for k, v in NET_CONFIG.items() if k not in ("_target_", "block")}
    return RestorationModule(
        net=RestorationUNet(NAFBlock, **cfg), loss=loss or RestorationLoss(torch.nn.L1Loss()),
        optimizer=partial(torch.optim.AdamW, lr=lr, weight_decay=1e-4),
        scheduler=partial(warmup_cosine, warmup_steps=2, min_lr=min_lr),
        metrics=list(metrics), net_config=NET_CONFIG, **kw)


def make_trainer(tmp_path, max_steps, callbacks=(), **kw):
    return L.Trainer(default_root_dir=tmp_path, max_steps=max_steps, accelerator="cpu", devices=1, logger=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
                     num_sanity_val_steps=0, check_val_every_n_epoch=None, **kw)


class FixedOrderData(L.LightningDataModule):
    """Unshuffled, so a resumed run sees the same batches as a straight one."""

    def __init__(self, train, val, batch_size):
        super().__init__()
        self.train, self.val, self.batch_size = train, val, batch_size

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train, batch_size=self.batch_size)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.val, batch_size=1)


def datamodule(pair_dataset, n=8, batch_size=2, sigma=0.1):
    return FixedOrderData(pair_dataset(n, sigma=sigma), pair_dataset(2, sigma=sigma, seed=1), batch_size)


def test_training_steps_lower_the_loss_and_log_input_and_output_psnr(tmp_path, pair_dataset):
    module = make_module()
    batch = next(iter(torch.utils.data.DataLoader(pair_dataset(8, sigma=0.2), batch_size=8)))
    before = module.loss(module.net(batch["lq"]), batch["gt"]).item()
    trainer = make_trainer(tmp_path, 30, enable_checkpointing=False, val_check_interval=30)
    trainer.fit(module, datamodule(pair_dataset, sigma=0.2))
    after = module.loss(module.net(batch["lq"]), batch["gt"]).item()
    assert after < 0.8 * before
    metrics = trainer.callback_metrics
    for key in ("val/psnr", "val/psnr_input", "val/ssim", "val/psnr_y2", "val/ssim_input_y2"):
        assert key in metrics, key
    assert metrics["val/psnr"] > metrics["val/psnr_input"]


def test_lpips_is_checked_at_start_up_and_logged_for_input_and_output(tmp_path, pair_dataset, lpips_weights):
    lpips_metrics = [{"protocol": "rgb", "lpips": "alex"}]
    hidden = lpips_weights.rename(tmp_path / "elsewhere.pth")
    with pytest.raises(FileNotFoundError, match=lpips_weights.name):
        make_module(metrics=lpips_metrics)  # before any training step is spent
    hidden.rename(lpips_weights)
    trainer = make_trainer(tmp_path, 1, enable_checkpointing=False)
    module = make_module(metrics=lpips_metrics)
    trainer.validate(module, datamodule(pair_dataset))
    assert {"val/lpips", "val/lpips_input", "val/psnr"} <= set(trainer.callback_metrics)
    assert set(module.results["val"]["all"]) == {"psnr", "ssim", "lpips"}
    # LPIPS' network stays out of the weights: checkpoints and strict resumes see the restoration net only
    assert set(module.state_dict()) == set(make_module().state_dict())


@pytest.mark.parametrize("key, value, message", [
    ("lr", "abc", r"model.optimizer.lr must be a number, got 'abc'"),
    ("betas", [0.9], r"model.optimizer.betas must be a list of 2 numbers"),
    ("lr", -1.0, r"model.optimizer is invalid: Invalid learning rate: -1.0"),
])
def test_bad_optimizer_values_are_named_at_start_up(key, value, message):
    with pytest.raises(ValueError, match=message):
        RestorationModule(net=torch.nn.Conv2d(3, 3, 3), loss=torch.nn.L1Loss(),
                          optimizer=partial(torch.optim.AdamW, **{key: value}))
    with pytest.raises(ValueError, match=r"model.scheduler.warmup_steps must be a number, got 'ten'"):
        RestorationModule(net=torch.nn.Conv2d(3, 3, 3), loss=torch.nn.L1Loss(), optimizer=partial(torch.optim.AdamW),
                          scheduler=partial(warmup_cosine, warmup_steps="ten"))


def test_the_old_divergence_arguments_are_refused_naming_the_callback():
    with pytest.raises(TypeError, match=r"model.divergence_factor → callbacks.divergence_guard.factor.*"
                                        r"Remove model.divergence_factor"):
        make_module(divergence_factor=10)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        make_module(divergence_tolerance=10)


class TaskPairs(torch.utils.data.Dataset):
    """Two tasks: even images lightly, odd images heavily degraded."""

    def __init__(self, pair_dataset):
        self.light, self.heavy = pair_dataset(2, sigma=0.05, seed=3), pair_dataset(2, sigma=0.3, seed=4)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        sample = dict((self.light if i % 2 == 0 else self.heavy)[i // 2])
        return {**sample, "task": i % 2, "name": f"img{i}"}


def test_results_are_structured_per_task_and_match_the_logged_tags(tmp_path, pair_dataset):
    module = make_module(task_names=["light", "heavy"])
    data = TaskPairs(pair_dataset)
    trainer = make_trainer(tmp_path, 1, enable_checkpointing=False)
    trainer.validate(module, torch.utils.data.DataLoader(data, batch_size=3))
    results, logged = module.results["val"], trainer.callback_metrics
    assert list(results) == ["all", "light", "heavy"]
    assert list(results["all"]) == ["psnr", "ssim", "psnr_y2", "ssim_y2"]
    for task, prefix in (("all", "val/"), ("light", "val/light/"), ("heavy", "val/heavy/")):
        for name, values in results[task].items():
            base, _, protocol = name.partition("_")
            suffix = f"_{protocol}" if protocol else ""
            assert values["output"] == pytest.approx(float(logged[f"{prefix}{base}{suffix}"]))
            assert values["input"] == pytest.approx(float(logged[f"{prefix}{base}_input{suffix}"]))
    # per-task values are those of the task's images alone, whatever the batches mixed
    reference = ImageQualityMetrics("rgb")
    heavy = [data[i] for i in (1, 3)]
    reference.update(torch.stack([s["lq"] for s in heavy]), torch.stack([s["gt"] for s in heavy]))
    assert results["heavy"]["psnr"]["input"] == pytest.approx(float(reference.compute()["psnr"]), abs=1e-4)
    assert results["light"]["psnr"]["input"] > results["heavy"]["psnr"]["input"] + 5


def test_nan_outputs_name_the_image_and_the_weights(tmp_path, pair_dataset):
    module = make_module(weights_path="corrupt.ckpt")
    with torch.no_grad():
        module.net.intro.weight[0, 0, 0, 0] = float("nan")
    trainer = make_trainer(tmp_path, 1, enable_checkpointing=False)
    with pytest.raises(NonFiniteOutputError, match=r"img000 has NaN/Inf pixels \(weights from corrupt.ckpt\)"):
        trainer.test(module, datamodule(pair_dataset).val_dataloader())
    assert "test" not in module.results


def test_resume_from_last_checkpoint_equals_straight_run(tmp_path, pair_dataset):
    """N steps straight == interrupted after N/2 steps, resumed from last.ckpt (weights, EMA, optimizer, LR)."""
    n, dm = 8, datamodule(pair_dataset, n=8, batch_size=2)  # 4 batches/epoch: N/2 ends an epoch

    class Interrupt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == n // 2:
                trainer.should_stop = True

    def run(root, ckpt_path=None, interrupt=False):
        L.seed_everything(0)
        module = make_module(seed=1)
        callbacks = [EMAWeightAveraging(decay=0.9),
                     ModelCheckpoint(dirpath=root / "ckpt", save_last=True, every_n_train_steps=n // 2)]
        trainer = make_trainer(root, n, callbacks=callbacks + ([Interrupt()] if interrupt else []),
                               limit_val_batches=0)
        trainer.fit(module, dm, ckpt_path=ckpt_path)
        return module, trainer

    straight, t1 = run(tmp_path / "a")
    _, t_half = run(tmp_path / "b", interrupt=True)
    assert t_half.global_step == n // 2
    resumed, t2 = run(tmp_path / "c", ckpt_path=tmp_path / "b" / "ckpt" / "last.ckpt")
    assert t2.global_step == t1.global_step == n
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert t1.optimizers[0].param_groups[0]["lr"] == pytest.approx(t2.optimizers[0].param_groups[0]["lr"])


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, pair_dataset):
    module = make_module()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=3, save_top_k=-1,
                           save_last=True)
    trainer = make_trainer(tmp_path, 6, callbacks=[EMAWeightAveraging(decay=0.5), ckpt], limit_val_batches=0)
    trainer.fit(module, datamodule(pair_dataset))
    x = torch.rand(1, 3, 29, 35)
    module.net.eval()
    with torch.no_grad():
        # fit ends by copying the EMA weights into the module; last.ckpt holds them
        final = restore.load_model(tmp_path / "ckpt" / "last.ckpt")
        torch.testing.assert_close(final(x), module.net(x), rtol=0, atol=0)
        # mid-run checkpoints keep raw and EMA weights side by side
        mid = tmp_path / "ckpt" / "step=3.ckpt"
        assert "current_model_state" in torch.load(mid, weights_only=True)
        ema_net, raw_net = restore.load_model(mid), restore.load_model(mid, ema=False)
        assert not torch.allclose(raw_net(x), ema_net(x))
        exported = restore.export_model(ema_net, tmp_path / "net.safetensors")
        torch.testing.assert_close(restore.load_model(exported)(x), ema_net(x), rtol=0, atol=0)


def test_load_model_reports_mismatched_keys(tmp_path):
    net = RestorationUNet(NAFBlock, width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    path = restore.export_model(net, tmp_path / "a.safetensors", net_config=NET_CONFIG)
    other = RestorationUNet(NAFBlock, width=8, enc_blocks=(1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1))
    with pytest.raises(RuntimeError, match="missing keys .*encoder.levels.2.*shape mismatches"):
        restore.load_model(path, net=other)
    loaded = restore.load_model(path, net=other, strict=False)  # fine-tuning from a partial match
    torch.testing.assert_close(loaded.intro.weight, net.intro.weight)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        restore.load_model(tmp_path / "nope.ckpt")


def test_bf16_mixed_precision_trains_on_cpu(tmp_path, pair_dataset):
    module = make_module()
    trainer = make_trainer(tmp_path, 3, precision="bf16-mixed", enable_checkpointing=False, limit_val_batches=1,
                           val_check_interval=3)
    trainer.fit(module, datamodule(pair_dataset))
    assert torch.isfinite(trainer.callback_metrics["val/psnr"])
