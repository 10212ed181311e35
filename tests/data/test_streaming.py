"""Streaming training sets: `restore prepare` writes LitData shards of uint8 images; StreamingImageDataset reads
them back with the same crops and degradations, sharded across DDP ranks (also two CPU processes for real)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("litdata")

from litdata.utilities.env import _DistributedEnv  # noqa: E402

from restore.cli import EXIT_OK, EXIT_USAGE, main  # noqa: E402
from restore.data import AddGaussianNoise, EmbeddedImagesDataset, MotionBlur, RestorationDataModule  # noqa: E402
from restore.data.streaming import StreamingImageDataset  # noqa: E402
from restore.utils.image import read_image  # noqa: E402
from tests.data.conftest import build_shared_layouts, write_png  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 8


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder, its shards), written once by `restore prepare`."""
    root = tmp_path_factory.mktemp("stream")
    for k in range(IMAGES):
        write_png(root / "images" / f"img{k}.png", (40 + k, 36), seed=k)
    assert main(["prepare", str(root / "images"), str(root / "shards"), "--chunk-bytes", "8KB", "--workers", "1"]) \
        == EXIT_OK
    return root / "images", root / "shards"


def test_prepared_shards_hold_every_image_as_uint8(shards):
    images, out = shards
    assert (out / "index.json").is_file() and len(list(out.glob("*.bin"))) > 1  # several chunks
    import litdata

    raw = litdata.StreamingDataset(str(out))
    items = {raw[i]["name"]: raw[i]["image"] for i in range(len(raw))}
    assert sorted(items) == [f"img{k}" for k in range(IMAGES)]
    for name, image in items.items():
        assert image.dtype == torch.uint8
        assert torch.equal(image.float() / 255, read_image(images / f"{name}.png", 3))


def test_streamed_samples_follow_the_sample_contract(shards):
    _, out = shards
    dataset = StreamingImageDataset(str(out), [AddGaussianNoise(25)], patch_size=16, shuffle=False)
    samples = list(dataset)
    assert sorted(s["name"] for s in samples) == [f"img{k}" for k in range(IMAGES)]
    for sample in samples:
        assert sample["lq"].shape == sample["gt"].shape == (3, 16, 16) and sample["lq"].dtype == torch.float32
        assert 15 < float((sample["lq"] - sample["gt"]).std() * 255) < 35
    with pytest.raises(ValueError, match="prepare the shards with `restore prepare --channels 1`"):
        next(iter(StreamingImageDataset(str(out), [AddGaussianNoise(25)], channels=1, patch_size=16)))


def test_streamed_set_degrades_on_the_device_through_the_datamodule(shards):
    _, out = shards
    train = StreamingImageDataset(str(out), [MotionBlur(9), AddGaussianNoise(25)], patch_size=16)
    dm = RestorationDataModule(train=train, val=EmbeddedImagesDataset("val", max_side=64, seed=0), batch_size=4,
                               num_workers=0, degrade_on_device=True)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == IMAGES // 4
    assert batches[0]["gt"].dtype == torch.uint8 and "deferred" in batches[0]
    batch = dm.degrade(batches[0])
    assert batch["lq"].dtype == torch.float32 and batch["lq"].shape == (4, 3, 16, 16)
    assert int(batch["task"][0]) == dm.task_names.index("deblur+denoise")
    with pytest.raises(ValueError, match="must be the only one"):
        RestorationDataModule(train=[train, train], val=EmbeddedImagesDataset("val", seed=0))


def test_ranks_stream_disjoint_shares_of_the_images(shards, monkeypatch):
    _, out = shards
    seen = []
    for rank in range(2):
        # built before the process group exists (train.py builds the datamodule first): one process seen
        dataset = StreamingImageDataset(str(out), [AddGaussianNoise(25)], patch_size=16)
        assert dataset.distributed_env.world_size == 1
        monkeypatch.setattr(_DistributedEnv, "detect", classmethod(lambda cls, r=rank: cls(2, r, 1)))
        dataset.refresh_distributed_env()  # what the datamodule's setup does once DDP is up
        seen.append([s["name"] for s in dataset])
        monkeypatch.undo()
    assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1])
    assert len(seen[0]) == len(seen[1])  # drop_last under DDP: equal shares, no rank waits for another


def test_prepare_refuses_what_it_cannot_do(shards, tmp_path, capsys):
    images, out = shards
    assert main(["prepare", str(images), str(out)]) == EXIT_USAGE  # never writes into existing shards
    assert "already holds files" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "missing"), str(tmp_path / "new")]) == EXIT_USAGE
    assert "not found" in capsys.readouterr().err
    write_png(tmp_path / "bad" / "good.png")
    (tmp_path / "bad" / "broken.png").write_bytes(b"not an image")
    assert main(["prepare", str(tmp_path / "bad"), str(tmp_path / "new")]) == EXIT_USAGE
    assert f"Cannot read image {tmp_path / 'bad' / 'broken.png'}" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "new").exists()  # checked before anything is written


def test_ddp_two_cpu_processes_stream_from_a_local_folder(shards, tmp_path):
    _, out = shards
    shared = tmp_path / "shared"
    build_shared_layouts(shared / "data")  # CBSD68 stand-in for the config's validation set
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "data=denoise/streaming", f"data.train.input_dir={out}",
         f"paths.shared_dir={shared}", "data.train.patch_size=16", "data.batch_size=2", "data.num_workers=1",
         "data.pin_memory=false", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
         "trainer.max_steps=3", "trainer.val_check_interval=3", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=400, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
