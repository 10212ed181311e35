"""DeepRFT / DeepRFTv2: the Fourier product convolution, odd sizes, reversible columns, the multi-scale contract.

(The every-network contract — gradients, gray/RGB, export, deploy, tiling — runs on configs/model/net/deeprft_*.yaml
in test_contract.py.)
"""

from __future__ import annotations

import copy
from functools import partial

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from restore.inference import restore_tensor
from restore.lightning import KernelImages, RestorationModule
from restore.losses import MultiScaleLoss
from restore.models.deeprft import (
    DeepRFTNet,
    FourierKernelEstimator,
    ResFFTBlock,
    RevColumns,
    fft_conv2d,
    kernel_images,
)
from restore.models.inceptionnext import InceptionNeXtBlock
from restore.models.nafnet import NAFBlock
from restore.models.unet import RestorationUNet


def perturbed(net: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Move every parameter off its init (zero-init scales would hide branches)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


def circular_conv(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Spatial circular convolution (true convolution, not correlation) of (B, C, H, W) with (C, k, k), k odd,
    the kernel centred on its middle pixel."""
    c, k = kernel.shape[0], kernel.shape[-1]
    padded = F.pad(image, (k // 2,) * 4, mode="circular")
    return F.conv2d(padded, kernel.flip(-2, -1)[:, None], groups=c)


@pytest.mark.parametrize("size", [(16, 16), (13, 17), (15, 10)])
def test_fft_product_equals_spatial_circular_convolution(size):
    h, w = size
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, h, w, generator=g, dtype=torch.float64)
    kernel = torch.rand(3, 5, 5, generator=g, dtype=torch.float64)
    # the kernel on an H×W grid with its centre at (0, 0), wrapped: its rfft2 is the spectrum K
    grid = torch.zeros(3, h, w, dtype=torch.float64)
    grid[:, :5, :5] = kernel
    grid = torch.roll(grid, shifts=(-2, -2), dims=(-2, -1))
    spectrum = torch.fft.rfft2(grid)
    out = fft_conv2d(image.float(), spectrum[None])
    assert out.shape == image.shape
    torch.testing.assert_close(out.double(), circular_conv(image, kernel), rtol=0, atol=1e-5)
    # the kernel image shows the kernel back, centred
    shown = kernel_images(spectrum[None], (h, w), crop=5)[0]
    torch.testing.assert_close(shown.double(), kernel / kernel.amax(dim=(-2, -1), keepdim=True), rtol=0, atol=1e-5)


def test_fft_conv2d_rejects_a_mismatched_spectrum():
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 13, 9\)"):
        fft_conv2d(torch.rand(1, 2, 13, 17), torch.ones(1, 2, 13, 8, dtype=torch.complex64))


@pytest.mark.parametrize("size", [(13, 17), (16, 9), (1, 7)])
def test_odd_sizes_keep_their_size_through_every_fft_path(size):
    torch.manual_seed(0)
    x = torch.rand(2, 8, *size)
    assert ResFFTBlock(8)(x).shape == x.shape
    for domain in ("fourier", "spatial"):
        fke = perturbed(FourierKernelEstimator(8, NAFBlock, levels=2, width=4, domain=domain))
        feature, kernel = fke(x)
        assert feature.shape == x.shape
        if domain == "fourier":
            assert kernel.shape == (2, 8, size[0], size[1] // 2 + 1) and kernel.dtype == torch.complex64
            assert kernel_images(kernel, size, crop=None).shape == x.shape


def test_estimator_starts_as_a_delta_kernel_and_the_ablation_has_equal_parameters():
    fke = FourierKernelEstimator(8, NAFBlock, levels=2, width=4)
    _, kernel = fke(torch.rand(1, 8, 12, 15))
    torch.testing.assert_close(kernel, torch.ones_like(kernel), rtol=0, atol=0.05)  # K ≈ 1: f ≈ y at init
    spatial = FourierKernelEstimator(8, NAFBlock, levels=2, width=4, domain="spatial")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(spatial) == count(fke)
    with pytest.raises(ValueError, match="domain must be"):
        FourierKernelEstimator(8, NAFBlock, domain="wavelet")


def test_resfft_block_fills_the_unet_at_any_size():
    net = perturbed(RestorationUNet(ResFFTBlock, width=8, enc_blocks=[1, 1]))
    x = torch.rand(1, 3, 19, 27)
    assert net(x).shape == x.shape


def test_fft_paths_stay_float32_under_bf16_autocast():
    torch.manual_seed(0)
    fke = perturbed(FourierKernelEstimator(8, NAFBlock, levels=2, width=4))
    x = torch.rand(1, 8, 13, 17)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feature, kernel = fke(x)
        block_out = ResFFTBlock(8)(x)
    assert kernel.dtype == torch.complex64 and torch.isfinite(feature).all() and torch.isfinite(block_out).all()
    torch.testing.assert_close(feature.float(), fke(x)[0], rtol=0.05, atol=0.05)


def tiny_net(**kw) -> DeepRFTNet:
    torch.manual_seed(0)
    args = dict(width=8, enc_blocks=[1, 1], estimator_levels=2, estimator_width=4, columns=2)
    return perturbed(DeepRFTNet(NAFBlock, **{**args, **kw}))


def test_forward_gives_the_full_resolution_image_and_return_all_every_scale_coarse_to_fine():
    net = tiny_net().eval()
    x = torch.rand(2, 3, 19, 27)
    with torch.no_grad():
        out = net(x)
        scales = net(x, return_all=True)
    assert out.shape == x.shape and [s.shape[-2:] for s in scales] == [(10, 14), (19, 27)]
    torch.testing.assert_close(scales[-1], out, rtol=0, atol=0)
    kernels = net.estimate_kernels(x, crop=9)
    assert [k.shape for k in kernels] == [(2, 8, 9, 9)] * 2 and all(k.amax() <= 1 for k in kernels)
    assert tiny_net(estimator="spatial").estimate_kernels(x) == []
    with pytest.raises(ValueError, match=r"takes \(B, 3, H, W\)"):
        net(torch.rand(1, 1, 16, 16))


def test_coarse_scale_feeds_the_fine_one():
    net = tiny_net().eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        ref = net(x)
        net.unets[0].outro.weight.mul_(2)  # changes the coarse image, which the fine scale reads
        assert not torch.allclose(net(x), ref)


@pytest.mark.parametrize("block", [NAFBlock, partial(ResFFTBlock)])
def test_reversible_columns_give_the_plain_outputs_and_gradients(block):
    torch.manual_seed(0)
    net = DeepRFTNet(block, width=8, enc_blocks=[1, 1], estimator_levels=2, estimator_width=4, columns=3).double()
    perturbed(net).train()
    x = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    target = torch.rand_like(x)
    loss = MultiScaleLoss()

    def step(reversible: bool):
        for columns in net.columns:
            columns.reversible = reversible
        net.zero_grad()
        outs = net(x, return_all=True)
        loss(outs, target).backward()
        return [o.detach() for o in outs], {n: p.grad.clone() for n, p in net.named_parameters()}

    plain_out, plain_grad = step(False)
    rev_out, rev_grad = step(True)
    for a, b in zip(rev_out, plain_out):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    for name, g in plain_grad.items():
        torch.testing.assert_close(rev_grad[name], g, rtol=1e-7, atol=1e-10, msg=name)
    assert all(g.abs().sum() > 0 for n, g in rev_grad.items() if ".columns." in n)


def test_reversible_recomputation_leaves_batchnorm_statistics_as_the_plain_run():
    torch.manual_seed(0)
    columns = RevColumns(InceptionNeXtBlock, 8, [1, 1], [7, 7], columns=2)
    perturbed(columns).train()
    stem = torch.rand(2, 8, 16, 16)
    states = [torch.rand(2, 8, 16, 16, requires_grad=True), torch.rand(2, 16, 8, 8, requires_grad=True)]
    runs = {}
    for reversible in (False, True):
        cols = copy.deepcopy(columns)
        cols.reversible = reversible
        out = cols(stem, states)
        sum(o.square().mean() for o in out).backward()
        runs[reversible] = [b.clone() for n, b in cols.named_buffers() if "running" in n]
    for a, b in zip(runs[True], runs[False]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_alpha_stays_away_from_zero():
    columns = RevColumns(NAFBlock, 4, [1, 1], [3, 3], columns=1, min_alpha=0.1)
    level = columns.columns[0].levels[0]
    with torch.no_grad():
        level.alpha.zero_()
        level.alpha[0, 0] = -1e-4
        level.alpha[0, 1] = 0.5
    scale = level.scale().flatten()
    assert scale[0].item() == pytest.approx(-0.1) and scale[1].item() == 0.5 and (scale[2:] == 0.1).all()


def test_tiled_restoration_with_the_recommended_tiles():
    net = tiny_net().eval()
    x = torch.rand(1, 3, 150, 211)
    whole = restore_tensor(net, x)
    # the recommended 512/128 tiles: an image smaller than a tile is one tile, the whole-image path
    torch.testing.assert_close(restore_tensor(net, x, tile=512, tile_overlap=128), whole, rtol=0, atol=1e-6)
    tiled = restore_tensor(net, x, tile=96, tile_overlap=24)  # the same ratio at this size
    assert tiled.shape == x.shape and torch.isfinite(tiled).all()


def test_lightning_module_trains_every_scale_and_saves_kernel_images(tmp_path, pair_dataset):
    torch.manual_seed(0)
    net = DeepRFTNet(NAFBlock, width=8, enc_blocks=[1, 1], estimator_levels=2, estimator_width=4, columns=1)
    module = RestorationModule(net=net, loss=MultiScaleLoss(), optimizer=partial(torch.optim.AdamW, lr=2e-3),
                               save_images_dir=str(tmp_path / "images"))
    outputs = module.training_outputs(torch.rand(2, 3, 32, 32))
    assert isinstance(outputs, list) and [o.shape[-1] for o in outputs] == [16, 32]
    data = torch.utils.data.DataLoader(pair_dataset(8, sigma=0.05), batch_size=4)
    trainer = L.Trainer(default_root_dir=tmp_path, max_steps=12, accelerator="cpu", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[KernelImages()],
                        enable_checkpointing=False)
    first = MultiScaleLoss()(net(next(iter(data))["lq"], return_all=True), next(iter(data))["gt"]).item()
    trainer.fit(module, train_dataloaders=data)
    last = MultiScaleLoss()(net(next(iter(data))["lq"], return_all=True), next(iter(data))["gt"]).item()
    assert last < first
    trainer.test(module, dataloaders=torch.utils.data.DataLoader(pair_dataset(2, seed=1), batch_size=2))
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert names == ["img000.png", "img000_kernels_scale0.png", "img000_kernels_scale1.png",
                     "img001.png", "img001_kernels_scale0.png", "img001_kernels_scale1.png"]
