"""Degradations on the device, batched: the same results as the per-sample path, provably.

1. The per-sample path (``degradation(image, generator)``, now ``apply(sample(...))``) gives the former code's
   numbers bit for bit, and every validation/test set of every data config is bit-identical to the former
   pipeline (tests/data/reference_degradations.py is that code, frozen).
2. Given the same parameters (and the same per-sample noise generators), the batched ``apply`` equals the
   per-sample one within float tolerance; deferred training samples draw the per-sample path's parameters.
3. The same seed gives the same training batches, whatever the loader workers.
"""

from __future__ import annotations

import math
import re
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.multiprocessing  # noqa: F401  (registers torch's shared-memory pickling with ForkingPickler)
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import ConcatDataset, default_collate

from restore.data import (
    AddGaussianNoise,
    CleanImageDataset,
    EmbeddedImagesDataset,
    GaussianBlur,
    Haze,
    JPEGCompression,
    KernelBlur,
    LowLight,
    MotionBlur,
    PairedImageDataset,
    RainStreaks,
    RestorationDataModule,
    TaskTaggedDataset,
    apply_degradations,
    collate_samples,
    is_batched,
)
from restore.data.datasets import _embedded_image
from restore.utils.image import read_image
from tests.data.conftest import needs_shared, write_png
from tests.data.reference_degradations import reference_center_crop, reference_degrade

ROOT = Path(__file__).resolve().parents[2]

# every degradation and setting with its own code path; ranges, so parameters differ between samples
DEGRADATIONS = {
    "awgn": AddGaussianNoise(sigma=(0, 50)),
    "awgn_levels": AddGaussianNoise(sigma_choices=[15, 25, 50]),
    "awgn_clipped": AddGaussianNoise(sigma=25, clip=True),
    "motion_blur": MotionBlur(kernel_size=9),
    "motion_blur_25": MotionBlur(kernel_size=25),
    "gaussian_blur": GaussianBlur(sigma=(0.5, 2.0)),
    "anisotropic_gaussian_blur": GaussianBlur(sigma=(0.5, 2.0), anisotropic=True),
    "kernel_blur": KernelBlur(torch.rand(5, 7, generator=torch.Generator().manual_seed(0))),
    "jpeg_pillow": JPEGCompression(quality=(10, 60)),
    "jpeg_kornia": JPEGCompression(quality=(10, 60), backend="kornia"),
    "rain": RainStreaks(),
    "haze": Haze(),
    "low_light": LowLight(),
    "low_light_integer_gamma": LowLight(gamma=3.0),
}
CHAINS = {
    "blur_then_noise": [MotionBlur(kernel_size=9), AddGaussianNoise(sigma=(0, 2.55), task="deblur")],
    "noise_then_jpeg": [AddGaussianNoise(sigma=(0, 25)), JPEGCompression(quality=(20, 40))],
    "rain_haze_lowlight": [RainStreaks(), Haze(), LowLight()],
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- 1. the per-sample path is the former code, bit for bit -------------------------------------
@pytest.mark.parametrize("name", list(DEGRADATIONS) + list(CHAINS))
@pytest.mark.parametrize("channels", [1, 3])
def test_per_sample_path_is_the_former_code_bit_for_bit(name, channels):
    chain = CHAINS.get(name) or [DEGRADATIONS[name]]
    for seed, (h, w) in enumerate([(32, 32), (17, 40), (8, 8), (64, 48)]):
        image = torch.rand(channels, h, w, generator=_gen(seed))
        new_gen, old_gen = _gen(100 + seed), _gen(100 + seed)
        new = apply_degradations(image, chain, new_gen)
        old = reference_degrade(image, chain, old_gen)
        assert new.dtype == old.dtype and torch.equal(new, old), (name, channels, h, w)
        # and the generator is left where the former code left it (what a next degradation draws from)
        assert torch.equal(new_gen.get_state(), old_gen.get_state())


def _datasets(dataset) -> list:
    """The RestorationDatasets inside a datamodule's (tagged, concatenated) dataset."""
    if isinstance(dataset, ConcatDataset):
        return [d for part in dataset.datasets for d in _datasets(part)]
    return _datasets(dataset.dataset) if isinstance(dataset, TaskTaggedDataset) else [dataset]


def _former_sample(ds, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A validation/test sample as the former pipeline made it: float images, centre crop, degradations."""
    i = index % ds.num_images
    if isinstance(ds, EmbeddedImagesDataset):
        lq, gt = None, _embedded_image(ds.names[i], ds.channels, ds.max_side)
    elif isinstance(ds, PairedImageDataset):
        lq, gt = read_image(ds.pairs[i].lq, ds.channels), read_image(ds.pairs[i].gt, ds.channels)
    else:
        assert isinstance(ds, CleanImageDataset)
        lq, gt = None, read_image(ds.files[i], ds.channels)
    lq = gt if lq is None else lq
    if ds.crop_size is not None:
        lq, gt = reference_center_crop(lq, ds.crop_size), reference_center_crop(gt, ds.crop_size)
    return reference_degrade(lq, ds.degradations, ds.generator_for(index)), gt


def _assert_eval_sets_unchanged(dm, limit: int | None = None) -> int:
    checked = 0
    for split in (dm.val_dataset, dm.test_dataset):
        for ds in _datasets(split):
            for index in range(min(len(ds), limit or len(ds))):
                sample = ds[index]
                lq, gt = _former_sample(ds, index)
                assert torch.equal(sample["lq"], lq) and torch.equal(sample["gt"], gt), (ds, index)
                checked += 1
    return checked


DATA_CONFIGS = sorted(str(p.relative_to(ROOT / "configs" / "data").with_suffix(""))
                      for p in (ROOT / "configs" / "data").rglob("*.yaml") if p.parent.name != "semiblind")


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_every_configs_eval_sets_are_bit_identical_to_the_former_pipeline(compose, data_root, shared_root, name):
    kernels = shared_root / "data" / "kernels"
    kernels.mkdir(parents=True, exist_ok=True)
    for k in range(1, 13):  # blur kernels of deblur/test: a random non-negative 9×9 each
        np.savetxt(kernels / f"kernels12_k{k:02d}.txt", np.random.default_rng(k).random((9, 9)))
    cfg = compose("train", [f"data={name}", f"paths.data_dir={data_root}", f"paths.shared_dir={shared_root}",
                            "data.num_workers=0"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.update(train=None, repeat=None)  # the eval sets only (the training sets need more folders)
    made_by_a_benchmark = [root for root in re.findall(r"'root': '([^']+)'", str(data)) if root.startswith(
        str(ROOT / "outputs"))]  # dev splits: links a benchmark writes under outputs/
    if made_by_a_benchmark and not all(Path(root).is_dir() for root in made_by_a_benchmark):
        pytest.skip(f"{name} reads {made_by_a_benchmark[0]}, which a benchmark makes (see the config)")
    assert _assert_eval_sets_unchanged(instantiate(data)) > 0


@needs_shared("denoise", "CBSD68")
@needs_shared("kernels")
@pytest.mark.parametrize("name", ["denoise/cbsd68", "deblur/test", "allinone/unseen"])
def test_real_test_sets_are_bit_identical_to_the_former_pipeline(compose, data_root, name):
    """On ../shared/data itself: the published numbers' inputs (the first image of each set)."""
    cfg = compose("eval", [f"data={name}", f"paths.data_dir={data_root}", "data.num_workers=0", "ckpt_path=x"])
    try:
        dm = instantiate(cfg.data)
    except Exception as err:  # a set of this config that ../shared does not hold
        pytest.skip(f"{name}: {err}")
    assert _assert_eval_sets_unchanged(dm, limit=1) >= 1


# -- 2. batched = per sample, given the same parameters ----------------------------------------
@pytest.mark.parametrize("name", DEGRADATIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_batched_apply_equals_the_per_sample_apply(name, channels):
    degradation = DEGRADATIONS[name]
    batch, size = 6, (40, 36)
    images = torch.rand(batch, channels, *size, generator=_gen(1))
    params = [degradation.sample(_gen(10 + i), size) for i in range(batch)]
    batched = degradation.apply(images, default_collate(params), [_gen(100 + i) for i in range(batch)])
    single = torch.cat([degradation.apply(images[i:i + 1], default_collate([params[i]]), [_gen(100 + i)])
                        for i in range(batch)])
    assert batched.shape == images.shape
    # float tolerance: one kernel per sample in a grouped conv, kornia's tensor γ branch (x³ vs pow(x, 3))
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-6)
    assert not torch.equal(batched[0], batched[1])  # each sample its own parameters


def test_jpeg_backends_batch_as_documented():
    assert not is_batched(JPEGCompression()) and is_batched(JPEGCompression(backend="kornia"))
    assert all(is_batched(d) for n, d in DEGRADATIONS.items() if not n.startswith("jpeg"))


def _training_set(degradations, **options) -> EmbeddedImagesDataset:
    return EmbeddedImagesDataset("train", degradations=degradations, **{
        "patch_size": 24, "augment": True, "length": 12, "max_side": 96, **options})


def _val_set() -> EmbeddedImagesDataset:
    return EmbeddedImagesDataset("val", max_side=96, seed=0)


@pytest.mark.parametrize("name", ["motion_blur", "gaussian_blur", "kernel_blur", "jpeg_kornia", "rain", "haze"])
def test_deferred_samples_draw_the_per_sample_parameters(name):
    """A deferred training sample, degraded on the 'device' (here the CPU), equals the per-sample path's
    sample with the same generator: the same crop, flip and parameters (noise-free degradations)."""
    degradation = DEGRADATIONS[name]
    per_sample, deferred = _training_set([degradation]), _training_set([degradation])
    dm = RestorationDataModule(train=deferred, val=_val_set(),
                               num_workers=0, degrade_on_device=True)
    assert dm.device_degradations.chains == [[degradation]]
    for index in range(4):
        torch.manual_seed(index)  # a training sample's generator is seeded from the global RNG
        expected = per_sample[index]
        torch.manual_seed(index)
        sample = dm.train_dataset[index]
        assert "deferred" in sample and sample["lq"].dtype == expected["gt"].dtype
        batch = dm.degrade(collate_samples([sample]))
        torch.testing.assert_close(batch["lq"][0], expected["lq"], rtol=0, atol=1e-6)
        assert torch.equal(batch["gt"][0], expected["gt"])


def test_mixed_chains_in_one_batch_each_get_their_own_degradations():
    """All-in-one: samples of three training sets (three chains) in one batch; each sample is degraded as a
    batch of its chain alone would be (chain grouping, gather/scatter)."""
    sets = [_training_set([AddGaussianNoise(sigma_choices=[15, 25, 50])]), _training_set([RainStreaks()]),
            _training_set([Haze()])]
    dm = RestorationDataModule(train=sets, val=_val_set(),
                               num_workers=0, batch_size=9, degrade_on_device=True)
    samples = [dm.train_dataset[i] for i in (0, 12, 24, 1, 13, 25, 2, 14, 26)]
    groups = [samples[i::3] for i in range(3)]
    batch = dm.degrade(collate_samples([dict(s) for s in samples]))
    assert batch["lq"].dtype == torch.float32 and "deferred" not in batch
    for chain, members in enumerate(groups):
        alone = dm.degrade(collate_samples([dict(s) for s in members]))
        torch.testing.assert_close(batch["lq"][chain::3], alone["lq"], rtol=0, atol=1e-6)
        assert int(batch["task"][chain]) == chain


def test_only_the_batchable_tail_is_deferred():
    noise_then_jpeg = _training_set(CHAINS["noise_then_jpeg"])
    assert noise_then_jpeg.defer_degradations(0) == []  # libjpeg last: everything stays per sample
    blur_jpeg_noise = _training_set([MotionBlur(9), JPEGCompression((20, 40)), AddGaussianNoise(5)])
    assert [type(d) for d in blur_jpeg_noise.defer_degradations(0)] == [AddGaussianNoise]
    sample = blur_jpeg_noise[0]
    assert sample["lq"].dtype == torch.float32 and sample["gt"].dtype == torch.float32  # embedded: float
    assert len(sample["deferred"].params) == 1
    with pytest.raises(ValueError, match="has a seed"):
        _training_set([AddGaussianNoise(5)], seed=0).defer_degradations(0)


# -- 3. same seed → same training batches --------------------------------------------------------
def _training_batches(folder: Path, workers: int, seed: int, steps: int = 3) -> list[dict]:
    L.seed_everything(seed, workers=True)
    train = CleanImageDataset(folder, [MotionBlur(kernel_size=9), AddGaussianNoise(sigma=(0, 50))], patch_size=24,
                              augment=True, length=24, cache=True)
    val = CleanImageDataset(folder, [AddGaussianNoise(25)], seed=0)
    dm = RestorationDataModule(train=train, val=val, batch_size=4, num_workers=workers, degrade_on_device=True,
                               persistent_workers=False)
    batches = []
    for batch in dm.train_dataloader():
        assert batch["lq"].dtype == torch.uint8  # clean 8-bit crops cross to the device
        batches.append(dm.degrade(batch))
        if len(batches) == steps:
            return batches
    return batches


def test_same_seed_gives_the_same_training_batches(tmp_path):
    for k in range(3):
        write_png(tmp_path / f"{k}.png", (40, 32), seed=k)
    first = _training_batches(tmp_path, workers=0, seed=7)
    again = _training_batches(tmp_path, workers=0, seed=7)
    other = _training_batches(tmp_path, workers=0, seed=8)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"]) and a["name"] == b["name"]
        assert a["lq"].dtype == torch.float32 and not torch.equal(a["lq"], a["gt"])
    assert not torch.equal(first[0]["lq"], other[0]["lq"])
    with_workers = _training_batches(tmp_path, workers=2, seed=7)
    assert all(torch.equal(a["lq"], b["lq"]) for a, b in zip(with_workers, _training_batches(tmp_path, 2, seed=7)))


class _RecordingModule(L.LightningModule):
    """Keeps what training_step receives."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[dict] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen.append({k: v for k, v in batch.items() if k in ("lq", "gt")})
        return (self.weight * batch["lq"]).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_trainer_hands_the_module_degraded_float_batches(tmp_path):
    """Through Lightning: the datamodule's on_after_batch_transfer degrades the batch before training_step."""
    dm = RestorationDataModule(train=_training_set([MotionBlur(9), AddGaussianNoise(sigma=25)]),
                               val=_val_set(), batch_size=4,
                               num_workers=0, degrade_on_device=True)
    module = _RecordingModule()
    trainer = L.Trainer(max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        accelerator="cpu")
    trainer.fit(module, datamodule=dm)
    assert len(module.seen) == 2
    for batch in module.seen:
        assert batch["lq"].dtype == batch["gt"].dtype == torch.float32 and batch["lq"].shape == (4, 3, 24, 24)
        noise = (batch["lq"] - batch["gt"]).std() * 255
        assert 20 < float(noise) < 40  # σ = 25 on top of a mild blur


# -- uint8 images, decoded once, shared by the workers ----------------------------------------------
def test_cache_is_one_shared_uint8_buffer_that_workers_map(tmp_path):
    for k in range(4):
        write_png(tmp_path / f"{k}.png", (48, 40), seed=k)
    cached = CleanImageDataset(tmp_path, [AddGaussianNoise(25)], seed=0, cache=True)
    lazy = CleanImageDataset(tmp_path, [AddGaussianNoise(25)], seed=0)
    cache = cached._cache
    assert cache.buffer.dtype == torch.uint8 and cache.buffer.is_shared()
    assert cache.nbytes == 4 * 3 * 48 * 40  # a quarter of float32's bytes
    # a spawned worker gets the dataset pickled: the pixels travel as a shared-memory handle, not as bytes
    assert len(ForkingPickler.dumps(cached)) < cache.nbytes / 10
    for i in range(4):
        assert torch.equal(cached[i]["lq"], lazy[i]["lq"]) and torch.equal(cached[i]["gt"], lazy[i]["gt"])
        assert torch.equal(cached[i]["gt"], read_image(tmp_path / f"{i}.png", 3))
    gray = CleanImageDataset(tmp_path, [AddGaussianNoise(25)], seed=0, cache=True, channels=1)
    assert gray._cache.nbytes == 4 * 48 * 40 and gray[0]["gt"].shape == (1, 40, 48)


def test_sixteen_bit_images_stay_float(tmp_path):
    from PIL import Image

    values = np.linspace(0, 65535, 24 * 20, dtype=np.uint16).reshape(20, 24)
    Image.fromarray(values).save(tmp_path / "deep.png")
    ds = CleanImageDataset(tmp_path, [AddGaussianNoise(25)], seed=0, cache=True, channels=1)
    assert ds._cache.buffer.numel() == 0 and math.isclose(float(ds[0]["gt"].max()), 1.0)
    assert torch.equal(ds[0]["gt"], read_image(tmp_path / "deep.png", 1))
