"""Every configs/data file of this package instantiates, on temporary folders in its layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[2]
SHARED_CBSD68 = ROOT / ".." / "shared" / "data" / "denoise" / "CBSD68"
EXPECTED_TASKS = {
    "gopro": ["deblur"],
    "rain100": ["derain"],
    "sots": ["dehaze"],
    "clean_folder": ["denoise"],
    "all_in_one": ["denoise", "derain", "dehaze"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TASKS))
def test_folder_configs_instantiate_and_yield_batches(compose, data_root, name):
    patches = ([f"data.train.{i}.patch_size=16" for i in range(3)] if name == "all_in_one"
               else ["data.train.patch_size=16"])
    crops = ["data.val.crop_size=16"] if name == "gopro" else []
    cfg = compose("train", [f"data={name}", f"paths.data_dir={data_root}", "data.num_workers=0", "data.batch_size=2",
                            *patches, *crops])
    dm = instantiate(cfg.data)
    assert dm.task_names == EXPECTED_TASKS[name]
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (2, 3, 16, 16)
    assert set(next(iter(dm.val_dataloader()))) == {"lq", "gt", "task", "name"}


def test_embedded_config_is_the_documented_default(compose):
    cfg = compose("train", ["data=embedded"])
    assert cfg.data.train.patch_size == 64 and cfg.data.val.seed == 0 and cfg.data.val_batch_size == 1
    dm = instantiate(cfg.data)
    assert dm.task_names == ["denoise"] and len(dm.val_dataset) == 2


@pytest.mark.skipif(not SHARED_CBSD68.is_dir(), reason="../shared/data not present")
def test_cbsd68_config_reads_the_shared_set(compose):
    dm = instantiate(compose("train", ["data=cbsd68", "data.num_workers=0"]).data)
    assert len(dm.val_dataset) == 68 and dm.val_dataset.dataset.seed == 0


def test_missing_data_folder_names_path_and_layout(compose, tmp_path):
    cfg = compose("train", ["data=gopro", f"paths.data_dir={tmp_path}"])
    with pytest.raises(InstantiationException, match=rf"GoPro root {tmp_path / 'GoPro_Large'} not found; expected"):
        instantiate(cfg.data)


def test_gopro_root_override_moves_every_split(compose, data_root, tmp_path):
    moved = tmp_path / "elsewhere"
    (data_root / "GoPro_Large").rename(moved)
    cfg = compose("train", ["data=gopro", f"data.root={moved}", "data.num_workers=0", "data.val.crop_size=16",
                            "data.train.patch_size=16"])
    dm = instantiate(cfg.data)
    assert dm.root == str(moved)
    splits = (dm.train_dataset, dm.val_dataset, dm.test_dataset)  # each wrapped with its task id
    assert all(Path(ds.dataset.root) == moved for ds in splits)
