"""Datasets on temporary folders: the sample contract, pairs, sizes and images checked, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restore.data import (
    AddGaussianNoise,
    CleanImageDataset,
    EmbeddedImagesDataset,
    PairedImageDataset,
    gopro_pairs,
    paired_paths_from_folders,
    rain100_pairs,
    sots_pairs,
)
from restore.data.datasets import EMBEDDED_TRAIN, EMBEDDED_TRAIN_COLOR, EMBEDDED_VAL


def assert_contract(sample: dict, channels: int = 3) -> None:
    assert set(sample) == {"lq", "gt", "task", "name"}
    for key in ("lq", "gt"):
        assert sample[key].dtype == torch.float32 and sample[key].dim() == 3 and sample[key].shape[0] == channels
        assert sample[key].is_contiguous()
    assert sample["lq"].shape == sample["gt"].shape
    assert 0 <= float(sample["gt"].min()) and float(sample["gt"].max()) <= 1
    assert isinstance(sample["task"], int) and isinstance(sample["name"], str)


# -- pairs -------------------------------------------------------------------------------------
def test_paired_dataset_contract(paired_dirs):
    ds = PairedImageDataset(paired_paths_from_folders(*paired_dirs), task="deblur")
    assert len(ds) == 3 and ds.task_name == "deblur"
    sample = ds[1]
    assert_contract(sample)
    assert sample["name"] == "1" and sample["lq"].shape == (3, 20, 24)
    assert not torch.equal(sample["lq"], sample["gt"])
    gray = PairedImageDataset(paired_paths_from_folders(*paired_dirs), channels=1, patch_size=8, augment=True)[0]
    assert_contract(gray, channels=1)
    assert gray["lq"].shape == (1, 8, 8)
    assert PairedImageDataset(paired_paths_from_folders(*paired_dirs)).task_name == "restore"


def test_paired_dataset_takes_plain_lists_of_paths(paired_dirs):
    lq_dir, gt_dir = paired_dirs  # as a YAML list would give them: [[lq, gt], [lq, gt, name]]
    ds = PairedImageDataset([[str(lq_dir / "0.png"), str(gt_dir / "0.png")],
                             (lq_dir / "2.png", gt_dir / "2.png", "second")])
    assert ds.names == ["0", "second"] and ds[1]["name"] == "second"
    with pytest.raises(ValueError, match="no .lq, gt. pairs"):
        PairedImageDataset([])
    with pytest.raises(ValueError, match="a pair must be"):
        PairedImageDataset([str(lq_dir / "0.png")])


def test_layout_datasets_keep_their_names_and_tasks(data_root):
    gopro = PairedImageDataset(gopro_pairs(data_root / "GoPro_Large", "test"), task="deblur", patch_size=16,
                               augment=True)
    assert gopro.names[-1] == "GOPR0002_00_000001" and gopro[3]["name"] == "GOPR0002_00_000001"
    assert_contract(gopro[3])
    rain = PairedImageDataset(rain100_pairs(data_root / "Rain100L"), task="derain")
    assert rain.task_name == "derain"
    assert_contract(rain[0])
    sots = PairedImageDataset(sots_pairs(data_root / "SOTS" / "outdoor"), task="dehaze")
    assert len(sots) == 4 and sots.image_files.count(sots.pairs[0].gt) == 1  # a shared gt is listed once
    assert_contract(sots[2])


def test_clean_folder_with_synthetic_degradation(data_root):
    ds = CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], cache=True, patch_size=16, augment=True,
                           length=10)
    assert len(ds) == 10 and ds.num_images == 3 and ds.task_name == "denoise"
    sample = ds[7]
    assert_contract(sample)
    assert sample["name"] == "test_001" and sample["gt"].shape == (3, 16, 16)
    assert float((sample["lq"] - sample["gt"]).std() * 255) == pytest.approx(25, rel=0.3)
    # the returned gt is a copy: modifying it must not corrupt the cache
    sample["gt"].zero_()
    assert ds._cache[1][1].max() > 0


def test_sets_reading_the_same_files_share_one_cache(data_root):
    """An all-in-one recipe reads one folder once per degradation: one decoded copy, not one per set."""
    noise = CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], cache=True)
    other = CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(50)], cache=True, patch_size=8)
    gray = CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], cache=True, channels=1)
    fewer = CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], cache=True, exclude=["test_001"])
    assert other._cache is noise._cache
    assert gray._cache is not noise._cache and fewer._cache is not noise._cache
    assert torch.equal(fewer.load(1)[1], noise.load(2)[1])  # test_002 either way


def test_clean_folder_leaves_out_excluded_scenes_and_names_unknown_ones(data_root):
    """A folder that also holds a test set's scenes (CBSD432 holds 75 of Rain100L's): left out by name."""
    ds = CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], exclude=["test_001"], length=6)
    assert ds.names == ["test_000", "test_002"] and ds.num_images == 2
    assert {ds[i]["name"] for i in range(6)} == {"test_000", "test_002"}
    with pytest.raises(ValueError, match=r"\['test_9'\] \(1 in all\) are not images of the folder"):
        CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], exclude=["test_001", "test_9"])
    with pytest.raises(ValueError, match="every image is excluded"):
        CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], exclude=["test_000", "test_001", "test_002"])


def test_patch_larger_than_image_is_reflect_padded(data_root):
    ds = CleanImageDataset(data_root / "CBSD68", [AddGaussianNoise(5)], patch_size=40)
    assert ds[0]["gt"].shape == (3, 40, 40)


# -- determinism -------------------------------------------------------------------------------
def test_seeded_samples_identical_every_pass_and_differ_by_seed(data_root):
    def make(seed):
        return CleanImageDataset(data_root / "CBSD68", [AddGaussianNoise((0, 50))], seed=seed)
    a, b, c = make(0), make(0), make(1)
    for i in range(len(a)):
        assert torch.equal(a[i]["lq"], a[i]["lq"]) and torch.equal(a[i]["lq"], b[i]["lq"])
        assert not torch.equal(a[i]["lq"], c[i]["lq"])
    assert not torch.equal(a[0]["lq"] - a[0]["gt"], a[1]["lq"][:, :28, :32] - a[1]["gt"])  # per-index noise
    assert a.is_deterministic and not make(None).is_deterministic


def test_training_samples_are_fresh_but_follow_the_global_seed(data_root):
    ds = CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], patch_size=16, augment=True)
    assert not torch.equal(ds[0]["lq"], ds[0]["lq"])
    torch.manual_seed(3)
    first = ds[0]["lq"]
    torch.manual_seed(3)
    assert torch.equal(first, ds[0]["lq"])


# -- embedded photographs ----------------------------------------------------------------------
def test_embedded_split_channels_and_size():
    train = EmbeddedImagesDataset("train", patch_size=32, augment=True, length=50)
    val = EmbeddedImagesDataset("val", seed=0)
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
    again = EmbeddedImagesDataset("val", seed=0)
    assert torch.equal(again[0]["lq"], chelsea["lq"])  # the same inputs on every validation pass
    gray = EmbeddedImagesDataset("val", seed=0, channels=1, crop_size=64)
    assert_contract(gray[0], channels=1)
    assert gray[0]["gt"].shape == (1, 64, 64)
    with pytest.raises(ValueError, match="split"):
        EmbeddedImagesDataset("test")


def test_permute_channels_reorders_training_colours_only_when_asked():
    image = torch.tensor([10, 20, 30], dtype=torch.uint8).view(3, 1, 1).expand(3, 12, 12).contiguous()

    def orders(**options):
        ds = EmbeddedImagesDataset("train", names=["coffee"], patch_size=8, augment=True, **options)
        found = set()
        for seed in range(48):
            sample = ds.make_sample(None, image, "rgb", torch.Generator().manual_seed(seed))
            assert torch.equal(sample["lq"], sample["gt"])  # no degradation here: lq follows gt's order
            found.add(tuple(round(float(v) * 255) for v in sample["gt"][:, 0, 0]))
        return found

    assert orders(degradations=[]) == {(10, 20, 30)}
    assert len(orders(degradations=[], permute_channels=True)) == 6
    assert not EmbeddedImagesDataset("train", names=["coffee"], permute_channels=True).is_deterministic


def test_embedded_names_choose_the_photographs_sampled():
    color = EmbeddedImagesDataset("train", names=EMBEDDED_TRAIN_COLOR, patch_size=16, length=40)
    assert color.names == list(EMBEDDED_TRAIN_COLOR) and color.num_images == 5
    assert {color[i]["name"] for i in range(40)} == set(EMBEDDED_TRAIN_COLOR)
    # none of them is a gray photograph replicated to RGB
    assert all(not torch.equal(im[0], im[1]) for im in color.images)
    assert EmbeddedImagesDataset("train", names="coffee").names == ["coffee"]
    with pytest.raises(ValueError, match="chelsea.*choose one or more of the train photographs"):
        EmbeddedImagesDataset("train", names=["coffee", "chelsea"])  # a val photograph


# -- bad input, clear errors -------------------------------------------------------------------
def test_size_mismatch_fails_at_construction_naming_both_files(paired_dirs, make_png):
    lq_dir, gt_dir = paired_dirs
    make_png(gt_dir / "2.png", size=(30, 20))
    with pytest.raises(ValueError, match=rf"lq {lq_dir / '2.png'} is 24×20, gt {gt_dir / '2.png'} is 30×20"):
        PairedImageDataset(paired_paths_from_folders(lq_dir, gt_dir))


def test_unreadable_header_fails_at_construction(paired_dirs):
    lq_dir, gt_dir = paired_dirs
    (gt_dir / "1.png").write_text("not a png")
    with pytest.raises(OSError, match=rf"Cannot read image {gt_dir / '1.png'}"):
        PairedImageDataset(paired_paths_from_folders(lq_dir, gt_dir))
    with pytest.raises(FileNotFoundError, match=rf"{lq_dir / 'gone.png'}"):
        PairedImageDataset([(lq_dir / "gone.png", gt_dir / "0.png")])


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header survives: the file opens, decoding fails


def test_truncated_image_is_found_by_check_images_naming_the_file(paired_dirs):
    lq_dir, gt_dir = paired_dirs
    truncate(lq_dir / "1.png")
    ds = PairedImageDataset(paired_paths_from_folders(lq_dir, gt_dir))  # headers are fine
    assert_contract(ds[0])
    with pytest.raises(OSError, match=rf"{lq_dir / '1.png'}"):
        ds[1]
    with pytest.raises(OSError, match=rf"Cannot read image {lq_dir / '1.png'}"):
        ds.check_images()
    with pytest.raises(OSError, match=rf"{lq_dir / '1.png'}"):  # cache=True: at construction
        PairedImageDataset(paired_paths_from_folders(lq_dir, gt_dir), cache=True)
    truncate(gt_dir / "2.png")
    clean = CleanImageDataset(gt_dir, [AddGaussianNoise(25)])
    with pytest.raises(OSError, match=rf"{gt_dir / '2.png'}"):
        clean[2]
    with pytest.raises(OSError, match=rf"{gt_dir / '2.png'}"):
        clean.check_images(threads=1)
    EmbeddedImagesDataset("val", seed=0).check_images()  # in memory: nothing to read


def test_missing_or_empty_clean_folder_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=rf"clean-image folder {missing} not found; expected .*clean images"):
        CleanImageDataset(missing, [AddGaussianNoise(25)])
    with pytest.raises(FileNotFoundError, match="make it with `python make_split.py`"):  # a generated split
        CleanImageDataset(missing, [AddGaussianNoise(25)], made_by="python make_split.py")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=rf"clean-image folder {tmp_path / 'empty'} contains no images"):
        CleanImageDataset(tmp_path / "empty", [AddGaussianNoise(25)])


def test_bad_arguments_are_rejected(data_root):
    with pytest.raises(ValueError, match="at least one degradation"):
        CleanImageDataset(data_root / "BSD400", [])
    with pytest.raises(ValueError, match="channels"):
        CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], channels=2)
    with pytest.raises(ValueError, match="channels"):
        EmbeddedImagesDataset("val", channels=2)
    with pytest.raises(TypeError, match="patch_sise"):  # a misspelt option is not silently ignored
        CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)], patch_sise=16)
    with pytest.raises(IndexError):
        CleanImageDataset(data_root / "BSD400", [AddGaussianNoise(25)])[3]
