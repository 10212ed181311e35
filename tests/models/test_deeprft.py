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
from hydra.utils import instantiate

import restore
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
    window_starts,
    window_weights,
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
            padded = (size[0] + 64, size[1] + 64)  # the official 32-px replicate padding on each side
            assert kernel.size == padded and kernel.grid == (1, 1)
            assert kernel.spectrum.shape == (2, 1, 8, padded[0], padded[1] // 2 + 1)
            assert kernel.spectrum.dtype == torch.complex64
            assert kernel_images(kernel.centre(), kernel.size, crop=None).shape == (2, 8, *padded)


def test_estimator_starts_as_a_delta_kernel_and_the_ablation_has_equal_parameters():
    fke = FourierKernelEstimator(8, NAFBlock, levels=2, width=4)
    _, kernel = fke(torch.rand(1, 8, 12, 15))
    k = kernel.spectrum
    torch.testing.assert_close(k, torch.ones_like(k), rtol=0, atol=0.05)  # K ≈ 1: f ≈ y at init
    spatial = FourierKernelEstimator(8, NAFBlock, levels=2, width=4, domain="spatial")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(spatial) == count(fke)
    with pytest.raises(ValueError, match="domain must be"):
        FourierKernelEstimator(8, NAFBlock, domain="wavelet")


# -- the official computation, transcribed (DeepRFTv2_arch.py, KernelEstimator.forward/forward_/grids/grids_inverse,
# and window_partitionx/window_reversex), on our estimator's own modules ------------------------------------------
def _official_partition(x: torch.Tensor, ws: int):
    """window_partitionx: ws×ws windows on the top-left multiple of ws, then strips from the right and bottom
    borders and their corner; windows ordered (batch, row, column) within each group."""
    _, _, hh, ww = x.shape
    h, w = ws * (hh // ws), ws * (ww // ws)

    def partition(t):
        b, c, th, tw = t.shape
        t = t.reshape(b, c, th // ws, ws, tw // ws, ws).permute(0, 2, 4, 1, 3, 5)
        return t.reshape(-1, c, ws, ws)

    groups = [partition(x[:, :, :h, :w])]
    if w != ww:
        groups.append(partition(x[:, :, :h, -ws:]))
    if h != hh:
        groups.append(partition(x[:, :, -ws:, :w]))
    if h != hh and w != ww:
        groups.append(x[:, :, -ws:, -ws:])
    return torch.cat(groups), [g.shape[0] for g in groups]


def _official_reverse(windows: torch.Tensor, ws: int, hh: int, ww: int, counts: list[int]):
    """window_reversex: the main grid back in place, then only the uncovered rest of each border strip."""
    h, w = ws * (hh // ws), ws * (ww // ws)

    def reverse(t, th, tw):
        c = t.shape[1]
        t = t.reshape(-1, th // ws, tw // ws, c, ws, ws).permute(0, 3, 1, 4, 2, 5)
        return t.reshape(-1, c, th, tw)

    groups = list(torch.split(windows, counts))
    main = reverse(groups.pop(0), h, w)
    res = main.new_zeros(main.shape[0], main.shape[1], hh, ww)
    res[:, :, :h, :w] = main
    if w != ww:
        res[:, :, :h, w:] = reverse(groups.pop(0), h, ws)[:, :, :, w - ww:]
    if h != hh:
        res[:, :, h:, :w] = reverse(groups.pop(0), ws, w)[:, :, h - hh:, :]
    if h != hh and w != ww:
        res[:, :, h:, w:] = groups.pop(0)[:, :, h - hh:, w - ww:]
    return res


def _official_grids(x: torch.Tensor, patch: int, overlap: int):
    """grids: windows of min(side, patch) every patch − overlap, the last one moved back to end at the border."""
    _, _, h, w = x.shape
    k1, k2 = min(h, patch), min(w, patch)
    stride = (k1 - overlap, k2 - overlap)
    num_row = (h - overlap - 1) // stride[0] + 1
    num_col = (w - overlap - 1) // stride[1] + 1
    step_i = k1 if num_row == 1 else stride[0]
    step_j = k2 if num_col == 1 else stride[1]
    parts, idxes, i, last_i = [], [], 0, False
    while i < h and not last_i:
        j, last_j = 0, False
        if i + k1 >= h:
            i, last_i = h - k1, True
        while j < w and not last_j:
            if j + k2 >= w:
                j, last_j = w - k2, True
            parts.append(x[:, :, i:i + k1, j:j + k2])
            idxes.append((i, j))
            j += step_j
        i += step_i
    return torch.cat(parts), idxes, (num_row, num_col), stride


def _official_grids_inverse(outs: torch.Tensor, idxes, counts, stride, patch: int, overlap: int, b: int, h: int,
                            w: int):
    """grids_inverse: each window's edges multiplied by linear ramps (over the overlap, or over the last window's
    own overlap ek), the windows summed."""
    k1, k2 = min(h, patch), min(w, patch)
    ek1 = counts[0] * stride[0] + overlap * 2 - h
    ek2 = counts[1] * stride[1] + overlap * 2 - w
    up = lambda n: torch.linspace(0.0, 1.0, n, dtype=outs.dtype)  # noqa: E731
    down = lambda n: torch.linspace(1.0, 0.0, n, dtype=outs.dtype)  # noqa: E731
    preds = outs.new_zeros(b, outs.shape[1], h, w)
    for n, (i, j) in enumerate(idxes):
        out = outs[n * b:(n + 1) * b].clone()
        if i != 0 and i + k1 != h:
            out[:, :, :overlap] *= up(overlap)[:, None]
        if i + k1 * 2 - ek1 < h:
            out[:, :, -overlap:] *= down(overlap)[:, None]
        if i + k1 == h and i != 0:
            out[:, :, :ek1] *= up(ek1)[:, None]
        if i + k1 * 2 - ek1 == h:
            out[:, :, -ek1:] *= down(ek1)[:, None]
        if j != 0 and j + k2 != w:
            out[:, :, :, :overlap] *= up(overlap)
        if j + k2 * 2 - ek2 < w:
            out[:, :, :, -overlap:] *= down(overlap)
        if j + k2 == w and j != 0:
            out[:, :, :, :ek2] *= up(ek2)
        if j + k2 * 2 - ek2 == w:
            out[:, :, :, -ek2:] *= down(ek2)
        preds[:, :, i:i + k1, j:j + k2] += out
    return preds


def official_fke(fke: FourierKernelEstimator, d: torch.Tensor, patch: int, overlap: int, pad: int) -> torch.Tensor:
    """The official KernelEstimator.forward (inp_feature = deconv_feature = 'feature', spatial_concat): 1×1 convs
    to x and y; above patch² the features go to windows (non-overlapping in training or with no overlap, else the
    overlapping grid); replicate padding; x's spectrum → encoder → LayerNorm → head → K; irfft2(rfft2(y)·K); crop;
    windows back; f' = 1×1([f; d]). Only the FFT norm of x's spectrum is ours (ortho; the official backward)."""
    b, _, h, w = d.shape
    fx = torch.cat([fke.to_x(d), fke.to_y(d)], dim=1)
    windowed = h > patch or w > patch
    train_windows = fke.training or overlap == 0
    if windowed and train_windows:
        fx, counts = _official_partition(fx, patch)
    elif windowed:
        fx, idxes, grid, stride = _official_grids(fx, patch, overlap)
    if pad > 0:
        fx = F.pad(fx, (pad, pad, pad, pad), mode="replicate")
    x, y = fx.chunk(2, dim=1)
    spec = torch.fft.rfft2(x, norm="ortho")
    r = fke.encoder(fke.r0(torch.cat([spec.real, spec.imag], dim=1)))
    k_re, k_im = fke.head(fke.norm(r)).chunk(2, dim=1)
    f = torch.fft.irfft2(torch.fft.rfft2(y) * torch.complex(k_re, k_im), s=y.shape[-2:])
    if pad > 0:
        f = f[:, :, pad:-pad, pad:-pad]
    if windowed and train_windows:
        f = _official_reverse(f, patch, h, w, counts)
    elif windowed:
        f = _official_grids_inverse(f, idxes, grid, stride, patch, overlap, b, h, w)
    return fke.fuse(torch.cat([f, d], dim=1))


@pytest.mark.parametrize("size, training", [((37, 29), False), ((37, 29), True), ((30, 52), False),
                                            ((40, 12), False), ((16, 16), False), ((12, 15), True)])
def test_estimator_matches_the_official_computation_with_padding_and_windows(size, training):
    """Windows of 16 (overlap 4 at inference, none in training), 3-px replicate padding: the official's 512/128/32
    at a size a test can afford. (30, 52): three windows overlap in rows 14–15 (the official ramps, unnormalised);
    (40, 12): windows along one axis only; (16, 16): one window, padding alone."""
    torch.manual_seed(0)
    fke = perturbed(FourierKernelEstimator(6, NAFBlock, levels=2, width=4, pad=3, window=16, window_overlap=4))
    fke = fke.double().train(training)
    d = torch.rand(2, 6, *size, dtype=torch.float64)
    ours, kernel = fke(d)
    torch.testing.assert_close(ours, official_fke(fke, d, 16, 4, 3), rtol=0, atol=1e-12)
    rows, cols = (len(window_starts(n, 16, 0 if training else 4)) if n > 16 else 1 for n in size)
    assert kernel.grid == (rows, cols) and kernel.size == (min(size[0], 16) + 6, min(size[1], 16) + 6)
    # without the padding the product wraps around each window's border: a different estimate
    fke.pad = 0
    assert (fke(d)[0] - ours).abs().amax() > 1e-3


def test_window_weights_sum_to_one_where_at_most_two_windows_overlap():
    for size, window, overlap in ((720, 512, 128), (1280, 512, 128), (360, 256, 64), (1000, 512, 128)):
        starts = window_starts(size, window, overlap)
        total = torch.zeros(size, dtype=torch.float64)
        for s, wgt in zip(starts, window_weights(starts, window, hard=False, dtype=torch.float64)):
            total[s:s + window] += wgt
        cover = torch.zeros(size)
        for s in starts:
            cover[s:s + window] += 1
        torch.testing.assert_close(total[cover <= 2], torch.ones_like(total[cover <= 2]), rtol=0, atol=1e-12)
        hard = torch.zeros(size, dtype=torch.float64)
        for s, wgt in zip(starts, window_weights(starts, window, hard=True, dtype=torch.float64)):
            hard[s:s + window] += wgt
        assert (hard == 1).all()
    assert window_starts(720, 512, 128) == [0, 208] and window_starts(1280, 512, 128) == [0, 384, 768]
    assert window_starts(300, 512, 128) == [0]
    with pytest.raises(ValueError, match="overlap"):
        window_starts(600, 512, 512)
    with pytest.raises(ValueError, match="window_overlap"):
        FourierKernelEstimator(8, NAFBlock, window=64, window_overlap=64)


def test_network_halves_the_estimator_padding_and_windows_per_coarser_scale():
    net = DeepRFTNet(NAFBlock, width=8, enc_blocks=[1, 1], estimator_levels=2, estimator_width=4, estimator_pad=32,
                     estimator_window=512, estimator_window_overlap=128)  # the official values (the net configs')
    coarse, fine = net.estimators
    assert (fine.pad, fine.window, fine.window_overlap) == (32, 512, 128)
    assert (coarse.pad, coarse.window, coarse.window_overlap) == (16, 256, 64)
    net = DeepRFTNet(NAFBlock, width=8, enc_blocks=[1, 1], estimator_levels=2, estimator_width=4, estimator_pad=0,
                     estimator_window=None).eval()
    assert [e.pad for e in net.estimators] == [0, 0] and [e.window for e in net.estimators] == [None, None]
    kernels = net.estimate_kernels(torch.rand(1, 3, 24, 40), crop=None)
    assert [k.shape[-2:] for k in kernels] == [(12, 20), (24, 40)]


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
    assert kernel.spectrum.dtype == torch.complex64 and torch.isfinite(feature).all()
    assert torch.isfinite(block_out).all()
    torch.testing.assert_close(feature.float(), fke(x)[0], rtol=0.05, atol=0.05)


def tiny_net(**kw) -> DeepRFTNet:
    torch.manual_seed(0)
    args = dict(width=8, enc_blocks=[1, 1], estimator_levels=2, estimator_width=4, columns=2, latent_sharp=True)
    return perturbed(DeepRFTNet(NAFBlock, **{**args, **kw}))


def test_forward_gives_the_full_resolution_image_and_return_all_every_scale_coarse_to_fine():
    net = tiny_net().eval()
    x = torch.rand(2, 3, 19, 27)
    with torch.no_grad():
        out = net(x)
        scales = net(x, return_all=True)
    # per scale the latent sharp image (the decoder's, before the FKE) then the FKE's
    assert out.shape == x.shape and [s.shape[-2:] for s in scales] == [(10, 14)] * 2 + [(19, 27)] * 2
    torch.testing.assert_close(scales[-1], out, rtol=0, atol=0)
    assert not torch.allclose(scales[-2], out)
    net.latent_outros = None  # latent_sharp=False: one image per scale
    assert [s.shape[-2:] for s in net(x, return_all=True)] == [(10, 14), (19, 27)]
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
    net = DeepRFTNet(NAFBlock, width=8, enc_blocks=[1, 1], estimator_levels=2, estimator_width=4, columns=1,
                     latent_sharp=True)
    module = RestorationModule(net=net, loss=MultiScaleLoss(), optimizer=partial(torch.optim.AdamW, lr=2e-3),
                               save_images_dir=str(tmp_path / "images"))
    outputs = module.training_outputs(torch.rand(2, 3, 32, 32))
    assert isinstance(outputs, list) and [o.shape[-1] for o in outputs] == [16, 16, 32, 32]
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


@pytest.mark.parametrize("size", [(150, 211), (90, 240), (64, 64)])
def test_inference_tiles_follow_the_estimator_windows_and_blend_to_one(size, monkeypatch):
    """Tiles of 64 overlapping by 16 (the estimator's window and overlap): each tile is the network run on that
    crop alone; an identity network comes back unchanged (the ramps are normalised where three tiles overlap:
    150 = 64 + 48 + 38)."""
    net = tiny_net(estimator_window=64, estimator_window_overlap=16, tile=64, tile_overlap=16).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        tiled = net(x)
        rows, cols = window_starts(size[0], 64, 16), window_starts(size[1], 64, 16)
        # a tile's pixels far from every other tile are that crop's own output
        i, j = rows[0], cols[0]
        alone = net(x[..., i:i + 64, j:j + 64])
        inner = [starts[1] if len(starts) > 1 else min(64, n) for starts, n in ((rows, size[0]), (cols, size[1]))]
        torch.testing.assert_close(tiled[..., :inner[0], :inner[1]], alone[..., :inner[0], :inner[1]], rtol=0,
                                   atol=1e-6)
        if max(size) <= 64:  # one tile: the whole-image computation
            torch.testing.assert_close(tiled, net._run(x)[0][-1][1], rtol=0, atol=0)
        # the whole image at once in training mode and with return_all (the loss reads every scale)
        assert net(x, return_all=True)[-1].shape == x.shape
    monkeypatch.setattr(net, "_run", lambda t, **_: ([(1, t[:, :3])], []))
    torch.testing.assert_close(net(x), x, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="tile_overlap"):
        DeepRFTNet(NAFBlock, tile=64, tile_overlap=64)


def test_estimator_input_options_read_the_blurry_and_latent_sharp_images():
    """The official inp_feature / deconv_feature options: x from [blurry; latent sharp; d], y from the blurry image
    (the estimated kernels then act on the image itself)."""
    torch.manual_seed(0)
    fke = perturbed(FourierKernelEstimator(8, NAFBlock, levels=2, width=4, pad=2, inputs="inp_latentsharp_feature",
                                           deconv_inputs="inp")).double()
    d, image, latent = (torch.rand(2, c, 13, 17, dtype=torch.float64) for c in (8, 3, 3))
    out, kernel = fke(d, image=image, latent=latent)
    assert out.shape == d.shape and kernel.spectrum.shape[2] == 8
    assert fke.to_y.in_channels == 3 and fke.to_x.in_channels == 14
    with pytest.raises(ValueError, match="latentsharp"):
        fke(d, image=image)
    with pytest.raises(ValueError, match="inputs must be one of"):
        FourierKernelEstimator(8, NAFBlock, deconv_inputs="inp_latentsharp_feature")
    with pytest.raises(ValueError, match="latent_sharp=True"):
        DeepRFTNet(NAFBlock, width=8, estimator_inputs="inp_latentsharp_feature")
    net = tiny_net(estimator_inputs="inp_latentsharp_feature", estimator_deconv_inputs="inp_feature").train()
    x = torch.rand(2, 3, 19, 27)
    outs = net(x, return_all=True)
    F.l1_loss(outs[-1], torch.rand_like(x)).backward()  # the output alone reaches the latent heads through x
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.latent_outros.parameters())


def test_a_config_stored_before_the_estimator_options_builds_the_network_it_was_trained_as():
    """A stored config without estimator_pad / estimator_window (weights trained before they existed) gets no
    padding and one window, as then; the net configs ask for the official 32 / 512, and the shipped deblur_fke runs
    its estimator as its recipe trained it (32 px padding, the 128² training patch as window and tile)."""
    from restore.models.factory import compose_net_config

    config = compose_net_config("deeprft_tiny")
    assert (config["estimator_pad"], config["estimator_window"]) == (32, 512)
    new_keys = ("estimator_pad", "estimator_window", "estimator_window_overlap")
    old = {k: v for k, v in config.items() if k not in new_keys}
    net = instantiate(old)
    assert all(est.pad == 0 and est.window is None for est in net.estimators)
    shipped = restore.load_model("deblur_fke")
    assert [(est.pad, est.window) for est in shipped.estimators] == [(16, 64), (32, 128)]
    assert shipped.tile == 128
