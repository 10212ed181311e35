"""RestorationDataModule: batches with the contract, task mixing, val/test rules."""

from __future__ import annotations

import pytest
import torch

from restore.data import (
    AddGaussianNoise,
    CleanFolderDataset,
    EmbeddedImages,
    Rain100Dataset,
    RestorationDataModule,
    SOTSDataset,
)


def _denoise(root, **kw):
    return CleanFolderDataset(root / "BSD400", [AddGaussianNoise((0, 50))], **kw)


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
             Rain100Dataset(data_root / "RainTrainL", patch_size=16, length=4),
             SOTSDataset(data_root / "RESIDE" / "OTS", patch_size=16, length=4)]
    val = [SOTSDataset(data_root / "SOTS" / "outdoor"), _denoise(data_root, seed=0, crop_size=16),
           Rain100Dataset(data_root / "Rain100L", crop_size=16)]
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
        with pytest.raises(ValueError, match="val dataset CleanFolderDataset is random"):
            RestorationDataModule(train, bad, num_workers=0)
    with pytest.raises(ValueError, match="test dataset"):
        RestorationDataModule(train, _denoise(data_root, seed=0), test=_denoise(data_root), num_workers=0)


def test_full_images_of_different_sizes_need_batch_size_one(data_root):
    val = [_denoise(data_root, seed=0), CleanFolderDataset(data_root / "CBSD68", [AddGaussianNoise(25)], seed=0)]
    dm = RestorationDataModule(None, val, val_batch_size=6, num_workers=0)
    with pytest.raises(ValueError, match=r"different sizes.*val_batch_size=1"):
        list(dm.val_dataloader())
    with pytest.raises(ValueError, match="without a training dataset"):
        dm.train_dataloader()


def test_workers_give_the_same_validation_inputs_and_fresh_training_noise():
    train = EmbeddedImages("train", patch_size=16, length=8)
    val = EmbeddedImages("val", seed=0, crop_size=32)
    in_process = RestorationDataModule(train, val, batch_size=4, num_workers=0)
    workers = RestorationDataModule(train, val, batch_size=4, num_workers=2)
    assert workers.persistent_workers and not in_process.persistent_workers
    a, b = list(in_process.val_dataloader()), list(workers.val_dataloader())
    assert all(torch.equal(x["lq"], y["lq"]) for x, y in zip(a, b))
    train_batches = list(workers.train_dataloader())
    assert len(train_batches) == 2
    noise = [b["lq"] - b["gt"] for b in train_batches]
    assert not torch.equal(noise[0], noise[1])  # each worker draws its own randomness
