"""RestorationDataModule: batches with the contract, task mixing and replication, val/test rules,
val/test images checked at start-up."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from restore.data import (
    AddGaussianNoise,
    CleanImageDataset,
    EmbeddedImagesDataset,
    Haze,
    PairedImageDataset,
    RainStreaks,
    RestorationDataModule,
    rain100_pairs,
    sots_pairs,
)


def _denoise(root, **kw):
    return CleanImageDataset(root / "BSD400", [AddGaussianNoise((0, 50))], **kw)


def _derain(root: Path, **kw):
    return PairedImageDataset(rain100_pairs(root), task="derain", **kw)


def _dehaze(root: Path, **kw):
    return PairedImageDataset(sots_pairs(root), task="dehaze", **kw)


def test_batches_follow_the_contract(data_root):
    dm = RestorationDataModule(_denoise(data_root, patch_size=16, augment=True, length=8),
                               _denoise(data_root, seed=0), batch_size=4, num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"lq", "gt", "task", "name"}
    assert batch["lq"].shape == batch["gt"].shape == (4, 3, 16, 16) and batch["gt"].dtype == torch.float32
    assert batch["task"].tolist() == [0] * 4 and len(batch["name"]) == 4
    assert dm.task_names == ["denoise"]
    val = list(dm.val_dataloader())
    assert len(val) == 3 and val[0]["lq"].shape == (1, 3, 32, 32)  # full images, one per batch
    test = list(dm.test_dataloader())  # test defaults to val
    assert all(torch.equal(a["lq"], b["lq"]) for a, b in zip(val, test))


def test_all_in_one_mixing_keeps_task_ids_consistent(data_root):
    train = [_denoise(data_root, patch_size=16, length=4),
             _derain(data_root / "RainTrainL", patch_size=16, length=4),
             _dehaze(data_root / "RESIDE" / "OTS", patch_size=16, length=4)]
    val = [_dehaze(data_root / "SOTS" / "outdoor"), _denoise(data_root, seed=0, crop_size=16),
           _derain(data_root / "Rain100L", crop_size=16)]
    dm = RestorationDataModule(train, val, batch_size=12, num_workers=0)
    assert dm.task_names == ["denoise", "derain", "dehaze"]
    batch = next(iter(dm.train_dataloader()))
    assert sorted(batch["task"].tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    for sample in dm.val_dataloader():
        expected = {"0001": 2, "0002": 2, "test_000": 0, "test_001": 0, "test_002": 0, "1": 1, "2": 1}
        assert int(sample["task"]) == expected[sample["name"][0].split("_0.")[0]]


def test_val_datasets_must_be_deterministic(data_root):
    train = _denoise(data_root, patch_size=16)
    unseeded, random_crop = _denoise(data_root), _denoise(data_root, seed=0, patch_size=16)
    for bad in (unseeded, random_crop, _denoise(data_root, seed=0, augment=True)):
        with pytest.raises(ValueError, match="val dataset CleanImageDataset is random"):
            RestorationDataModule(train, bad, num_workers=0)
    with pytest.raises(ValueError, match="test dataset"):
        RestorationDataModule(train, _denoise(data_root, seed=0), test=_denoise(data_root), num_workers=0)


def test_full_images_of_different_sizes_need_batch_size_one(data_root):
    val = [_denoise(data_root, seed=0), CleanImageDataset(data_root / "CBSD68", [AddGaussianNoise(25)], seed=0)]
    dm = RestorationDataModule(None, val, val_batch_size=6, num_workers=0)
    with pytest.raises(ValueError, match=r"different sizes.*val_batch_size=1"):
        list(dm.val_dataloader())
    with pytest.raises(ValueError, match="without a training dataset"):
        dm.train_dataloader()


def test_workers_give_the_same_validation_inputs_and_fresh_training_noise():
    train = EmbeddedImagesDataset("train", patch_size=16, length=8)
    val = EmbeddedImagesDataset("val", seed=0, crop_size=32)
    in_process = RestorationDataModule(train, val, batch_size=4, num_workers=0)
    workers = RestorationDataModule(train, val, batch_size=4, num_workers=2)
    assert workers.persistent_workers and not in_process.persistent_workers
    a, b = list(in_process.val_dataloader()), list(workers.val_dataloader())
    assert all(torch.equal(x["lq"], y["lq"]) for x, y in zip(a, b))
    train_batches = list(workers.train_dataloader())
    assert len(train_batches) == 2
    noise = [b["lq"] - b["gt"] for b in train_batches]
    assert not torch.equal(noise[0], noise[1])  # each worker draws its own randomness


# -- per-task replication ----------------------------------------------------------------------
def test_repeat_replicates_each_training_set_keeping_task_ids(data_root):
    train = [_denoise(data_root, patch_size=16, length=4), _derain(data_root / "RainTrainL", patch_size=16),
             _dehaze(data_root / "RESIDE" / "OTS", patch_size=16)]
    val = [_denoise(data_root, seed=0), _derain(data_root / "Rain100L"), _dehaze(data_root / "SOTS" / "outdoor")]
    dm = RestorationDataModule(train, val, repeat=[3, 1, 2], batch_size=4, num_workers=0)
    assert len(dm.train_dataset) == 3 * 4 + 2 + 2 * 4
    tasks = [dm.train_dataset[i]["task"] for i in range(len(dm.train_dataset))]
    assert tasks == [0] * 12 + [1] * 2 + [2] * 8
    assert dm.task_names == ["denoise", "derain", "dehaze"] and len(dm.val_dataset) == 3 + 2 + 4  # val not repeated
    assert len(RestorationDataModule(train, val, num_workers=0).train_dataset) == 4 + 2 + 4  # default: once each
    for bad in ([3, 1], [3, 0, 1], [1.5, 1, 1]):
        with pytest.raises(ValueError, match=r"one integer factor >= 1 per training dataset \(3 given\)"):
            RestorationDataModule(train, val, repeat=bad, num_workers=0)


def test_embedded_all_in_one_yields_every_task():
    kw = dict(patch_size=16, augment=True, length=4)
    train = [EmbeddedImagesDataset("train", [AddGaussianNoise(sigma_choices=[15, 25, 50])], **kw),
             EmbeddedImagesDataset("train", [RainStreaks()], **kw), EmbeddedImagesDataset("train", [Haze()], **kw)]
    val = [EmbeddedImagesDataset("val", [degradation], seed=0, crop_size=16)
           for degradation in (AddGaussianNoise(25), RainStreaks(), Haze())]
    dm = RestorationDataModule(train, val, repeat=[3, 1, 1], batch_size=20, num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert sorted(batch["task"].tolist()) == [0] * 12 + [1] * 4 + [2] * 4
    assert [int(b["task"]) for b in dm.val_dataloader()] == [0, 0, 1, 1, 2, 2]


# -- val/test images checked at start-up -------------------------------------------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_setup_decodes_every_val_and_test_image_naming_a_bad_one(data_root):
    bad = data_root / "Rain100L" / "inputcrop" / "2.png"
    _truncate(bad)
    val = _derain(data_root / "Rain100L")  # headers are intact: building succeeds
    dm = RestorationDataModule(_denoise(data_root, patch_size=16), val, num_workers=0)
    for stage in ("fit", "validate", "test"):  # test defaults to val
        with pytest.raises(OSError, match=rf"val dataset PairedImageDataset .*Cannot read image {bad}.*"
                                          r"data.check_images=false" if stage != "test" else rf"test dataset.*{bad}"):
            dm.setup(stage)
    RestorationDataModule(None, val, num_workers=0, check_images=False).setup("fit")  # opted out
    good = _denoise(data_root, seed=0)
    only_test = RestorationDataModule(None, good, test=val, num_workers=0)
    only_test.setup("validate")  # the val set is fine; the test set is not looked at
    with pytest.raises(OSError, match=rf"test dataset .*{bad}"):
        only_test.setup("fit")  # train.py tests after fitting: fit checks the test set too


def test_setup_decodes_a_file_shared_by_val_and_test_once(data_root, monkeypatch):
    import restore.data.datasets as datasets

    decoded = []
    monkeypatch.setattr(datasets, "_decode_only", lambda path, channels: decoded.append(path))
    val = _derain(data_root / "Rain100L", crop_size=16)  # as gopro.yaml: val crops, test full images
    dm = RestorationDataModule(None, val, test=_derain(data_root / "Rain100L"), num_workers=0)
    dm.setup("fit")
    assert sorted(decoded) == sorted(val.image_files) and len(decoded) == 4
    dm.setup("test")  # already checked in this process
    assert len(decoded) == 4


def test_bad_val_image_stops_fit_before_the_first_training_step(data_root):
    _truncate(data_root / "CBSD68" / "1.png")

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Conv2d(3, 3, 1)
            self.steps = 0

        def training_step(self, batch, batch_idx):
            self.steps += 1
            return (self.layer(batch["lq"]) - batch["gt"]).abs().mean()

        def validation_step(self, batch, batch_idx):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    val = CleanImageDataset(data_root / "CBSD68", [AddGaussianNoise(25)], seed=0)
    dm = RestorationDataModule(_denoise(data_root, patch_size=16, length=4), val, batch_size=2, num_workers=0)
    model = Probe()
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    with pytest.raises(OSError, match=rf"{data_root / 'CBSD68' / '1.png'}"):
        trainer.fit(model, datamodule=dm)
    assert model.steps == 0
