"""Images (validation triplets, kernel grids) reach TensorBoard, MLflow and W&B; the MLflow and W&B logger
configs train offline with everything in the run folder."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from restore.lightning import KernelImages, RestorationModule
from restore.lightning.image_logging import to_uint8_hwc

TINY_RUN = ["trainer.max_steps=2", "trainer.log_every_n_steps=1", "trainer.val_check_interval=2", "data.num_workers=0",
            "data.batch_size=2",
            "data.train.patch_size=32", "++data.val.crop_size=32", "callbacks=none", "model.log_images=2"]


def _mlflow_images(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(next(run_dir.glob("mlartifacts/*/artifacts")))) for p in
                  run_dir.glob("mlartifacts/*/artifacts/images/**/*.png"))


def _wandb_images(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("wandb/offline-run-*/files/media/images/**/*.png"))


def test_to_uint8_hwc_layouts_and_bad_shape():
    rgb = torch.rand(3, 5, 7)
    assert to_uint8_hwc(rgb).shape == (5, 7, 3)
    assert to_uint8_hwc(torch.full((1, 4, 4), 2.0)).max() == 255  # gray, clamped
    with pytest.raises(ValueError, match=r"\(C, H, W\).*\(2, 4, 4\)"):
        to_uint8_hwc(torch.rand(2, 4, 4))


def test_triplets_and_kernel_grids_reach_every_image_logger(tmp_path, pair_dataset, offline_loggers):
    """One validation pass of a kernel-estimating net: TensorBoard, MLflow and W&B each get the triplets
    (val/<name>) and the kernel grids (val_kernels/<name>/scale<s>); CSV takes none and does not fail."""
    import wandb
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from restore.models.deeprft import DeepRFTNet
    from restore.models.nafnet import NAFBlock

    torch.manual_seed(0)
    net = DeepRFTNet(NAFBlock, width=8, enc_blocks=[1, 1], estimator_levels=2, estimator_width=4, columns=1)
    module = RestorationModule(net=net, loss=torch.nn.L1Loss(), optimizer=partial(torch.optim.AdamW, lr=1e-3),
                               log_images=1)
    loggers = [CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path / "tb", name=None),
               MLFlowLogger("t", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                            artifact_location=str(tmp_path / "mlartifacts")),
               WandbLogger(save_dir=tmp_path, offline=True, project="t")]
    trainer = L.Trainer(default_root_dir=tmp_path, accelerator="cpu", logger=loggers, callbacks=[KernelImages(1)],
                        enable_progress_bar=False, enable_model_summary=False)
    try:
        trainer.validate(module, torch.utils.data.DataLoader(pair_dataset(2), batch_size=1))
    finally:
        wandb.finish()
    tags = {"val/img000", "val_kernels/img000/scale0", "val_kernels/img000/scale1"}
    loggers[1].experiment.flush()
    events = EventAccumulator(loggers[1].log_dir, size_guidance={"images": 0})
    events.Reload()
    assert set(events.Tags()["images"]) == tags
    assert _mlflow_images(tmp_path) == sorted(f"images/{t}/step_0000000.png" for t in tags)
    shown = _wandb_images(tmp_path)
    assert len(shown) == 3 and sum(n.startswith("scale") for n in shown) == 2, shown


def test_mlflow_logger_config_keeps_metrics_and_images_in_the_run_folder(compose, offline_loggers):
    from mlflow import MlflowClient

    from train import train

    cfg = compose("train", ["logger=mlflow", *TINY_RUN])
    run_dir = Path(cfg.paths.output_dir)
    train(cfg)
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name(cfg.task_name).experiment_id])
    (psnr,) = client.get_metric_history(run.info.run_id, "val/psnr")  # the one validation
    assert 5 < psnr.value < 50
    assert client.get_metric_history(run.info.run_id, "train/loss")
    assert run.data.params["optimized_metric"] == "val/psnr"  # the run's config as parameters
    assert _mlflow_images(run_dir) == ["images/val/camera/step_0000002.png", "images/val/chelsea/step_0000002.png"]


def test_wandb_logger_config_is_offline_with_metrics_and_images_in_the_run_folder(compose, offline_loggers):
    from train import train

    cfg = compose("train", ["logger=wandb", *TINY_RUN])
    assert cfg.logger.wandb.offline is True  # offline from the config itself, not only from the environment
    run_dir = Path(cfg.paths.output_dir)
    train(cfg)
    (offline_run,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = offline_run.read_bytes()
    assert b"val/ssim" in records and b"train/loss" in records  # logged metrics (not config keys)
    assert [n.split("_")[0] for n in _wandb_images(run_dir)] == ["camera", "chelsea"]
    import wandb

    assert wandb.run is None  # train() finished the run: a sweep's next job starts its own


def test_labelled_panels_put_each_image_under_its_label():
    from restore.lightning.image_logging import LABEL_STRIP_HEIGHT, TRIPLET_LABELS, labelled_panels

    panels = [torch.rand(3, 20, 40) for _ in range(3)]
    sheet = np.asarray(labelled_panels(panels, TRIPLET_LABELS))
    assert sheet.shape == (20 + LABEL_STRIP_HEIGHT, 3 * 40, 3)
    for i, panel in enumerate(panels):
        np.testing.assert_array_equal(sheet[LABEL_STRIP_HEIGHT:, 40 * i:40 * (i + 1)], to_uint8_hwc(panel))
        assert sheet[:LABEL_STRIP_HEIGHT, 40 * i:40 * (i + 1)].max() > 128  # the label is drawn in white on black
    gray = labelled_panels([torch.rand(1, 8, 8)] * 2, ["a", "b"])
    assert gray.mode == "L" and gray.size == (16, 8 + LABEL_STRIP_HEIGHT)
    with pytest.raises(ValueError, match="one size"):
        labelled_panels([torch.rand(3, 8, 8), torch.rand(3, 8, 9)], ["a", "b"])


def test_a_fit_writes_the_logged_validation_triplets_as_labelled_pngs(tmp_path, pair_dataset):
    """No logger at all: the run folder still gets images/val/<step>/<name>.png for the log_images chosen images,
    input | output | target side by side under their labels; the sanity check writes none."""
    from PIL import Image

    from restore.lightning.image_logging import LABEL_STRIP_HEIGHT
    from restore.models.nafnet import NAFBlock
    from restore.models.unet import RestorationUNet

    torch.manual_seed(0)
    net = RestorationUNet(NAFBlock, width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,))
    module = RestorationModule(net=net, loss=torch.nn.L1Loss(), optimizer=partial(torch.optim.AdamW, lr=1e-3),
                               log_images=2)
    val = pair_dataset(3, size=24, seed=1)
    trainer = L.Trainer(default_root_dir=tmp_path, max_steps=2, val_check_interval=2, accelerator="cpu",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=1)
    trainer.fit(module, torch.utils.data.DataLoader(pair_dataset(4, size=24), batch_size=2),
                torch.utils.data.DataLoader(val, batch_size=1))
    written = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "images").rglob("*.png"))
    assert written == ["images/val/2/img000.png", "images/val/2/img001.png"]
    assert not list(tmp_path.rglob(".*.tmp"))
    for i in range(2):
        sheet = np.asarray(Image.open(tmp_path / written[i]))
        assert sheet.shape == (24 + LABEL_STRIP_HEIGHT, 3 * 24, 3)
        np.testing.assert_array_equal(sheet[LABEL_STRIP_HEIGHT:, :24], to_uint8_hwc(val[i]["lq"]))
        np.testing.assert_array_equal(sheet[LABEL_STRIP_HEIGHT:, 48:], to_uint8_hwc(val[i]["gt"]))
        with torch.no_grad():
            output = to_uint8_hwc(module.net(val[i]["lq"][None])[0])
        assert np.abs(sheet[LABEL_STRIP_HEIGHT:, 24:48].astype(int) - output).max() <= 1
