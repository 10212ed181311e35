"""Datasets on temporary folders in each layout: the sample contract, pairing, determinism, errors."""

from __future__ import annotations

import re

import pytest
import torch

from restore.data import (
    AddGaussianNoise,
    CleanFolderDataset,
    EmbeddedImages,
    GoProDataset,
    PairedFolderDataset,
    Rain100Dataset,
    SOTSDataset,
)
from restore.data.datasets import EMBEDDED_TRAIN, EMBEDDED_VAL


def assert_contract(sample: dict, channels: int = 3) -> None:
    assert set(sample) == {"lq", "gt", "task", "name"}
    for key in ("lq", "gt"):
        assert sample[key].dtype == torch.float32 and sample[key].dim() == 3 and sample[key].shape[0] == channels
        assert sample[key].is_contiguous()
    assert sample["lq"].shape == sample["gt"].shape
    assert 0 <= float(sample["gt"].min()) and float(sample["gt"].max()) <= 1
    assert isinstance(sample["task"], int) and isinstance(sample["name"], str)


# -- layouts -----------------------------------------------------------------------------------
def test_paired_folder_contract_and_stems(paired_dirs):
    lq_dir, gt_dir = paired_dirs
    ds = PairedFolderDataset(lq_dir, gt_dir, task="deblur")
    assert len(ds) == 3 and ds.task_name == "deblur"
    sample = ds[1]
    assert_contract(sample)
    assert sample["name"] == "1" and sample["lq"].shape == (3, 20, 24)
    assert not torch.equal(sample["lq"], sample["gt"])
    gray = PairedFolderDataset(lq_dir, gt_dir, channels=1, patch_size=8, augment=True)[0]
    assert_contract(gray, channels=1)
    assert gray["lq"].shape == (1, 8, 8)


def test_paired_folder_stem_map_many_to_one(tmp_path, make_png):
    for k in (1, 2):
        make_png(tmp_path / "clear" / f"{k}.png", seed=k)
        make_png(tmp_path / "hazy" / f"{k}_1.png", seed=k)
        make_png(tmp_path / "hazy" / f"{k}_2.png", seed=k)
    ds = PairedFolderDataset(tmp_path / "hazy", tmp_path / "clear", stem_map=[r"(.*)_\d+", r"\1"])
    assert [(lq.name, gt.name) for lq, gt in ds.pairs] == [
        ("1_1.png", "1.png"), ("1_2.png", "1.png"), ("2_1.png", "2.png"), ("2_2.png", "2.png")]
    with pytest.raises(ValueError, match="stem_map"):
        PairedFolderDataset(tmp_path / "hazy", tmp_path / "clear", stem_map="(.*)")


def test_gopro_layout(data_root):
    ds = GoProDataset(data_root / "GoPro_Large", split="test", patch_size=16, augment=True)
    assert len(ds) == 4 and ds.task_name == "deblur"
    assert ds.names == ["GOPR0001_00_000000", "GOPR0001_00_000001", "GOPR0002_00_000000", "GOPR0002_00_000001"]
    assert_contract(ds[3])
    assert len(GoProDataset(data_root, split="train")) == 4  # the folder holding GoPro_Large also works


def test_rain100_both_naming_conventions(data_root):
    jorder = Rain100Dataset(data_root / "RainTrainL")  # rainy/rain-N.png ↔ norain/norain-N.png
    assert [(lq.name, gt.name) for lq, gt in jorder.pairs] == [("rain-1.png", "norain-1.png"),
                                                              ("rain-2.png", "norain-2.png")]
    crop = Rain100Dataset(data_root / "Rain100L")  # inputcrop/N.png ↔ cleancrop/N.png
    assert [(lq.parent.name, gt.parent.name) for lq, gt in crop.pairs] == [("inputcrop", "cleancrop")] * 2
    assert crop.task_name == "derain"
    assert_contract(crop[0])


def test_sots_layout_many_hazy_per_clear(data_root, tmp_path, make_png):
    ds = SOTSDataset(data_root / "SOTS" / "outdoor")
    assert len(ds) == 4 and ds.task_name == "dehaze"
    assert {gt.name for _, gt in ds.pairs} == {"0001.png", "0002.png"}
    assert_contract(ds[2])
    make_png(tmp_path / "indoor" / "gt" / "1400.png")  # gt/ instead of clear/
    make_png(tmp_path / "indoor" / "hazy" / "1400_3.png")
    assert SOTSDataset(tmp_path / "indoor").pairs[0][1].name == "1400.png"


def test_clean_folder_with_synthetic_degradation(data_root):
    ds = CleanFolderDataset(data_root / "BSD400", [AddGaussianNoise(25)], cache=True, patch_size=16, augment=True,
                            length=10)
    assert len(ds) == 10 and ds.num_images == 3 and ds.task_name == "denoise"
    sample = ds[7]
    assert_contract(sample)
    assert sample["name"] == "test_001" and sample["gt"].shape == (3, 16, 16)
    assert float((sample["lq"] - sample["gt"]).std() * 255) == pytest.approx(25, rel=0.3)
    # the returned gt is a copy: modifying it must not corrupt the cache
    sample["gt"].zero_()
    assert ds._cache[1].max() > 0


def test_patch_larger_than_image_is_reflect_padded(data_root):
    ds = CleanFolderDataset(data_root / "CBSD68", [AddGaussianNoise(5)], patch_size=40)
    assert ds[0]["gt"].shape == (3, 40, 40)


# -- determinism -------------------------------------------------------------------------------
def test_seeded_samples_identical_every_pass_and_differ_by_seed(data_root):
    make = lambda seed: CleanFolderDataset(data_root / "CBSD68", [AddGaussianNoise((0, 50))], seed=seed)
    a, b, c = make(0), make(0), make(1)
    for i in range(len(a)):
        assert torch.equal(a[i]["lq"], a[i]["lq"]) and torch.equal(a[i]["lq"], b[i]["lq"])
        assert not torch.equal(a[i]["lq"], c[i]["lq"])
    assert not torch.equal(a[0]["lq"] - a[0]["gt"], a[1]["lq"][:, :28, :32] - a[1]["gt"])  # per-index noise
    assert a.is_deterministic and not make(None).is_deterministic


def test_training_samples_are_fresh_but_follow_the_global_seed(data_root):
    ds = CleanFolderDataset(data_root / "BSD400", [AddGaussianNoise(25)], patch_size=16, augment=True)
    assert not torch.equal(ds[0]["lq"], ds[0]["lq"])
    torch.manual_seed(3)
    first = ds[0]["lq"]
    torch.manual_seed(3)
    assert torch.equal(first, ds[0]["lq"])


# -- embedded photographs ----------------------------------------------------------------------
def test_embedded_split_channels_and_size():
    train = EmbeddedImages("train", patch_size=32, augment=True, length=50)
    val = EmbeddedImages("val", seed=0)
    assert train.names == list(EMBEDDED_TRAIN) and val.names == ["chelsea", "camera"] == list(EMBEDDED_VAL)
    assert not set(train.names) & set(val.names)
    assert len(train) == 50 and len(val) == 2 and train.task_name == "denoise"
    assert all(img.shape[0] == 3 and max(img.shape[-2:]) <= 512 for img in train.images)
    assert_contract(train[5])
    assert train[5]["gt"].shape == (3, 32, 32)
    chelsea, camera = val[0], val[1]
    assert_contract(chelsea) and assert_contract(camera)
    assert chelsea["gt"].shape == (3, 300, 451) and camera["name"] == "camera"
    assert torch.equal(camera["gt"][0], camera["gt"][2])  # gray photograph replicated to RGB
    assert float((chelsea["lq"] - chelsea["gt"]).std() * 255) == pytest.approx(25, rel=0.05)
    again = EmbeddedImages("val", seed=0)
    assert torch.equal(again[0]["lq"], chelsea["lq"])  # the same inputs on every validation pass
    gray = EmbeddedImages("val", seed=0, channels=1, crop_size=64)
    assert_contract(gray[0], channels=1)
    assert gray[0]["gt"].shape == (1, 64, 64)
    with pytest.raises(ValueError, match="split"):
        EmbeddedImages("test")


# -- bad input, clear errors -------------------------------------------------------------------
def test_missing_roots_name_the_path_and_the_layout(tmp_path):
    missing = tmp_path / "nowhere"
    layout = re.escape("{train,test}/<sequence>/{blur,sharp}/*.png")
    with pytest.raises(FileNotFoundError, match=rf"GoPro root {missing} not found; expected .*{layout}"):
        GoProDataset(missing)
    with pytest.raises(FileNotFoundError, match=rf"Rain100 root {missing} not found.*inputcrop"):
        Rain100Dataset(missing)
    with pytest.raises(FileNotFoundError, match=rf"SOTS root {missing} not found.*hazy/<id>_<k>"):
        SOTSDataset(missing)
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*clean images"):
        CleanFolderDataset(missing, [AddGaussianNoise(25)])
    with pytest.raises(FileNotFoundError, match=rf"lq folder {missing}"):
        PairedFolderDataset(missing, tmp_path)


def test_incomplete_layouts_name_what_is_missing(data_root, tmp_path):
    (tmp_path / "rain" / "photos").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no rainy image folder.*found sub-folders \['photos'\]"):
        Rain100Dataset(tmp_path / "rain")
    (tmp_path / "gopro" / "train" / "SEQ" / "blur").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'gopro' / 'train' / 'SEQ' / 'sharp'}"):
        GoProDataset(tmp_path / "gopro")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'gopro' / 'test'} not found"):
        GoProDataset(tmp_path / "gopro", split="test")


def test_empty_folder_is_named(tmp_path, make_png):
    (tmp_path / "lq").mkdir()
    make_png(tmp_path / "gt" / "a.png")
    (tmp_path / "lq" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=rf"lq folder {tmp_path / 'lq'} contains no images"):
        PairedFolderDataset(tmp_path / "lq", tmp_path / "gt")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'lq'} contains no images"):
        CleanFolderDataset(tmp_path / "lq", [AddGaussianNoise(25)])


def test_unreadable_image_names_the_file(paired_dirs):
    lq_dir, gt_dir = paired_dirs
    data = (lq_dir / "1.png").read_bytes()
    (lq_dir / "1.png").write_bytes(data[: len(data) // 2])  # truncated
    ds = PairedFolderDataset(lq_dir, gt_dir)
    assert_contract(ds[0])
    with pytest.raises(OSError, match=rf"{lq_dir / '1.png'}"):
        ds[1]
    with pytest.raises(OSError, match=rf"{lq_dir / '1.png'}"):  # cache=True: at construction
        PairedFolderDataset(lq_dir, gt_dir, cache=True)
    (gt_dir / "2.png").write_text("not a png")
    with pytest.raises(OSError, match=rf"{gt_dir / '2.png'}"):
        CleanFolderDataset(gt_dir, [AddGaussianNoise(25)])[2]


def test_unmatched_stems_and_counts_name_the_first_unmatched_pair(paired_dirs, make_png):
    lq_dir, gt_dir = paired_dirs
    make_png(lq_dir / "7.png")
    first = rf"lq {lq_dir / '7.png'} has no gt image with stem '7'"
    counts = rf"4 lq images in {lq_dir}, 3 gt images in {gt_dir}"
    with pytest.raises(ValueError, match=rf"{counts}; first unmatched: {first}"):
        PairedFolderDataset(lq_dir, gt_dir)
    (lq_dir / "7.png").unlink()
    make_png(gt_dir / "8.png")
    with pytest.raises(ValueError, match=rf"3 lq images.*4 gt images.*gt {gt_dir / '8.png'} has no lq image"):
        PairedFolderDataset(lq_dir, gt_dir)


def test_size_mismatch_names_both_files_and_sizes(paired_dirs, make_png):
    lq_dir, gt_dir = paired_dirs
    make_png(gt_dir / "2.png", size=(30, 20))
    ds = PairedFolderDataset(lq_dir, gt_dir)
    with pytest.raises(ValueError, match=rf"lq {lq_dir / '2.png'} is 24×20, gt {gt_dir / '2.png'} is 30×20"):
        ds[2]


def test_bad_arguments_are_rejected(data_root):
    with pytest.raises(ValueError, match="at least one degradation"):
        CleanFolderDataset(data_root / "BSD400", [])
    with pytest.raises(ValueError, match="channels"):
        CleanFolderDataset(data_root / "BSD400", [AddGaussianNoise(25)], channels=2)
    with pytest.raises(IndexError):
        CleanFolderDataset(data_root / "BSD400", [AddGaussianNoise(25)])[3]
