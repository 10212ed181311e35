"""Every configs/data file instantiates, on temporary folders in its layout, and the configs of
the reference sets on ../shared/data itself when it is present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import open_dict

from tests.data.conftest import needs_shared

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_TASKS = {
    "deblur/gopro": ["deblur"],
    "derain/rain100": ["derain"],
    "dehaze/sots": ["dehaze"],
    "denoise/clean_folder": ["denoise"],
    "allinone/folders": ["denoise", "derain", "dehaze"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TASKS))
def test_folder_configs_instantiate_and_yield_batches(compose, data_root, name):
    patches = ([f"data.train.{i}.patch_size=16" for i in range(3)] if name == "allinone/folders"
               else ["data.train.patch_size=16"])
    crops = ["data.val.crop_size=16"] if name == "deblur/gopro" else []
    cfg = compose("train", [f"data={name}", f"paths.data_dir={data_root}", "data.num_workers=0", "data.batch_size=2",
                            *patches, *crops])
    dm = instantiate(cfg.data)
    assert dm.task_names == EXPECTED_TASKS[name]
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (2, 3, 16, 16)
    assert set(next(iter(dm.val_dataloader()))) == {"lq", "gt", "task", "name"}


def test_embedded_config_is_the_documented_default(compose):
    cfg = compose("train", ["data=denoise/embedded"])
    assert cfg.data.train.patch_size == 64 and cfg.data.val.seed == 0 and cfg.data.val_batch_size == 1
    dm = instantiate(cfg.data)
    assert dm.task_names == ["denoise"] and len(dm.val_dataset) == 2


# config, folder under shared/data, images in the real set, task, channels
SHARED_CONFIGS = [
    ("denoise/cbsd68", "denoise/CBSD68", 68, "denoise", 3),
    ("denoise/bsd68", "denoise/BSD68", 68, "denoise", 1),
    ("denoise/set12", "denoise/Set12", 12, "denoise", 1),
    ("derain/rain100l", "derain/Rain100L", 100, "derain", 3),
    ("derain/rain100h", "derain/Rain100H", 100, "derain", 3),
    ("lowlight/lol", "lowlight/LOL_eval15", 15, "lowlight", 3),
    ("dehaze/sots_indoor", "dehaze/SOTS_samples/indoor", 5, "dehaze", 3),
    ("dehaze/sots_outdoor", "dehaze/SOTS_samples/outdoor", 2, "dehaze", 3),
    ("deblur/gopro_avgframes", "deblur/GoPro_avgframes", 18, "deblur", 3),
]


def _check_shared_config(dm, task: str, channels: int) -> dict:
    assert dm.task_names == [task]  # the synthetic training task and the real val set agree
    assert dm.val_dataset.dataset.is_deterministic
    batch = next(iter(dm.train_dataloader()))
    assert batch["lq"].shape == (2, channels, 16, 16)
    sample = next(iter(dm.val_dataloader()))
    assert sample["lq"].shape[:2] == (1, channels) and sample["lq"].shape == sample["gt"].shape
    return sample


@pytest.mark.parametrize("name, folder, count, task, channels", SHARED_CONFIGS)
def test_shared_set_configs_on_their_layouts(compose, shared_root, name, folder, count, task, channels):
    cfg = compose("train", [f"data={name}", f"paths.shared_dir={shared_root}", "data.num_workers=0",
                            "data.batch_size=2", "data.train.patch_size=16"])
    dm = instantiate(cfg.data)
    assert Path(cfg.data.val.get("root") or cfg.data.val.pairs.root) == shared_root / "data" / folder
    dm.setup("fit")  # every val image decodes
    _check_shared_config(dm, task, channels)


@pytest.mark.parametrize("name, folder, count, task, channels",
                         [pytest.param(*c, marks=needs_shared(*c[1].split("/")), id=c[0]) for c in SHARED_CONFIGS])
def test_shared_set_configs_read_the_real_sets(compose, name, folder, count, task, channels):
    dm = instantiate(compose("train", [f"data={name}", "data.num_workers=0", "data.batch_size=2",
                                       "data.train.patch_size=16"]).data)
    assert len(dm.val_dataset) == count
    _check_shared_config(dm, task, channels)


def test_allinone_embedded_config_mixes_three_tasks(compose):
    cfg = compose("train", ["data=allinone/embedded", "data.num_workers=0", "data.batch_size=40",
                            *[f"data.train.{i}.length=8" for i in range(3)]])
    assert cfg.data.train[0].patch_size == 64 and list(cfg.data.repeat) == [3, 1, 1]
    dm = instantiate(cfg.data)
    assert dm.task_names == ["denoise", "derain", "dehaze"]
    assert len(dm.train_dataset) == 3 * 8 + 8 + 8
    batch = next(iter(dm.train_dataloader()))  # the whole epoch in one batch
    assert batch["lq"].shape == (40, 3, 64, 64)
    assert sorted(batch["task"].tolist()) == [0] * 24 + [1] * 8 + [2] * 8
    val = list(dm.val_dataloader())  # one val set per task: two photographs each, seeded
    assert [int(b["task"]) for b in val] == [0, 0, 1, 1, 2, 2]
    again = list(instantiate(cfg.data).val_dataloader())
    assert all(torch.equal(a["lq"], b["lq"]) for a, b in zip(val, again))
    noise, rain, haze = (val[i]["lq"] - val[i]["gt"] for i in (0, 2, 4))
    assert float(noise.std() * 255) == pytest.approx(25, rel=0.1)
    assert float(rain.min()) > -1e-6 and float(rain.mean()) > 0  # streaks only brighten
    assert float(haze.mean()) > 0  # haze lifts towards the airlight


def test_missing_data_folder_names_path_and_layout(compose, tmp_path):
    cfg = compose("train", ["data=deblur/gopro", f"paths.data_dir={tmp_path}"])
    with pytest.raises(InstantiationException, match=rf"GoPro root {tmp_path / 'GoPro_Large'} not found; expected"):
        instantiate(cfg.data)


def test_gopro_root_override_moves_every_split(compose, data_root, tmp_path):
    moved = tmp_path / "elsewhere"
    (data_root / "GoPro_Large").rename(moved)
    cfg = compose("train", ["data=deblur/gopro", f"data.root={moved}", "data.num_workers=0", "data.val.crop_size=16",
                            "data.train.patch_size=16"])
    dm = instantiate(cfg.data)
    assert dm.root == str(moved)
    splits = (dm.train_dataset, dm.val_dataset, dm.test_dataset)  # each wrapped with its task id
    assert all(moved in pair.lq.parents for ds in splits for pair in ds.dataset.pairs)


@needs_shared("kernels")
@needs_shared("denoise", "CBSD68")
@needs_shared("deblur", "GoPro_avgframes")
def test_deblur_test_config_is_cbsd68_times_four_motion_kernels_and_gopro(compose):
    cfg = compose("eval", ["data=deblur/test", "data.num_workers=0", "ckpt_path=unused"])
    with open_dict(cfg):
        for dataset in cfg.data.test:  # two 32² crops per set
            dataset.crop_size, dataset.length = 32, 2
    dm = instantiate(cfg.data)
    dm.setup("test")
    assert dm.task_names == ["cbsd68_k09", "cbsd68_k10", "cbsd68_k11", "cbsd68_k12", "gopro_avg"]
    first = list(dm.test_dataloader())
    again = list(instantiate(cfg.data).test_dataloader())
    assert len(first) == 10 and all(torch.equal(a["lq"], b["lq"]) for a, b in zip(first, again))
    for batch in first:  # every set is blurry: less high-frequency energy than its sharp target
        hf = [float((x[..., 1:, :] - x[..., :-1, :]).abs().mean()) for x in (batch["lq"], batch["gt"])]
        assert hf[0] < hf[1]
