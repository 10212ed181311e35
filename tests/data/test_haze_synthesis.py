"""Depth-based haze: the scattering model exactly, transmission in (0, 1], depth proxies that point the right way."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from restore.data import DepthHaze
from restore.data.haze_synthesis import color_attenuation_depth, random_depth, scatter


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(channels: int = 3, size: int = 48, seed: int = 0) -> torch.Tensor:
    coarse = torch.rand(1, channels, size // 8, size // 8, generator=_gen(seed))
    return 0.05 + 0.9 * F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("depth", ["random", "image", "mixed"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_range_and_determinism_per_seed(depth, channels):
    haze, img = DepthHaze(depth=depth), _image(channels)
    a, b, c = haze(img, _gen(1)), haze(img, _gen(1)), haze(img, _gen(2))
    assert a.shape == img.shape and a.dtype == img.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("depth", ["random", "image", "mixed"])
def test_transmission_in_unit_interval_and_bounded_by_beta(depth):
    haze = DepthHaze(beta=(0.6, 1.8), depth=depth)
    for seed in range(5):
        t = haze.transmission(_image(3, seed=seed), _gen(seed))
        assert t.shape == (1, 48, 48)
        assert (t > 0).all() and (t <= 1).all()
        assert t.min() >= math.exp(-1.8) - 1e-6
        assert t.max() - t.min() > 0.05  # spatially varying, not a uniform veil


def test_output_is_the_scattering_model_and_lies_between_scene_and_airlight():
    img = _image(3)
    haze = DepthHaze(beta=1.2, airlight=0.85, depth="mixed")
    hazy = haze(img, _gen(3))
    t = haze.transmission(img, _gen(3))  # the same draws: the generator's first use is the transmission
    assert torch.allclose(hazy, img * t + 0.85 * (1 - t), atol=1e-6)
    assert torch.allclose((hazy - 0.85 * (1 - t)) / t, img, atol=1e-5)  # invertible given t and A
    assert (hazy >= torch.minimum(img, torch.tensor(0.85)) - 1e-6).all()
    assert (hazy <= torch.maximum(img, torch.tensor(0.85)) + 1e-6).all()
    assert torch.equal(scatter(img, torch.ones(1, 48, 48), 0.9), img)  # t = 1: no haze


def test_airlight_is_drawn_per_image_gray_unless_tinted():
    img = torch.zeros(3, 16, 16)  # black scene: the output is A·(1 − t), so A = output / (1 − t)
    haze = DepthHaze(airlight=(0.7, 1.0), near=0.2)
    drawn = []
    for seed in range(4):
        airlight = haze(img, _gen(seed)) / (1 - haze.transmission(img, _gen(seed)))
        assert torch.allclose(airlight, airlight.flatten()[0].expand_as(airlight), atol=1e-4)  # one gray A
        drawn.append(float(airlight.flatten()[0]))
    assert all(0.7 <= a <= 1.0 for a in drawn) and max(drawn) - min(drawn) > 0.02
    tinted = DepthHaze(airlight=0.8, airlight_tint=0.1)(img, _gen(0))
    assert not torch.allclose(tinted[0], tinted[1])


def test_color_attenuation_prior_puts_bright_washed_out_regions_far():
    """Zhu et al. 2015: depth rises with brightness and falls with saturation."""
    img = torch.zeros(3, 32, 64)
    img[:, :, :32] = torch.tensor([0.45, 0.05, 0.05]).view(3, 1, 1)  # dark saturated red: near
    img[:, :, 32:] = 0.9  # bright gray (sky, a far wall): far
    depth = color_attenuation_depth(img)
    assert depth.shape == (1, 32, 64) and depth.min() >= 0 and depth.max() <= 1
    assert depth[..., :24].mean() < 0.2 and depth[..., 40:].mean() > 0.8
    t = DepthHaze(beta=1.5, depth="image", near=0.0).transmission(img, _gen(0))
    assert t[..., :24].mean() > t[..., 40:].mean() + 0.3
    gray = color_attenuation_depth(img.mean(0, keepdim=True))
    assert gray[..., 40:].mean() > gray[..., :24].mean()


def test_random_depth_is_smooth_and_far_at_the_top():
    tops, bottoms = [], []
    for seed in range(8):
        d = random_depth(64, 64, _gen(seed))
        assert d.shape == (1, 64, 64) and d.min() >= 0 and d.max() <= 1
        assert (d.diff(dim=-1).abs().max() < 0.2) and (d.diff(dim=-2).abs().max() < 0.2)  # smooth
        tops.append(float(d[:, :16].mean()))
        bottoms.append(float(d[:, -16:].mean()))
    assert sum(tops) / 8 > sum(bottoms) / 8 + 0.2


@pytest.mark.parametrize("depth", ["random", "image", "mixed"])
def test_batched_apply_equals_the_per_sample_path(depth):
    """A batch hazed at once (each image with its own parameters) = each image on its own."""
    haze = DepthHaze(depth=depth, airlight_tint=0.05)
    images = torch.stack([_image(3, seed=s) for s in range(4)])
    one_by_one = torch.stack([haze(img, _gen(20 + i)) for i, img in enumerate(images)])
    samples = [haze.sample(_gen(20 + i), (48, 48)) for i in range(4)]
    params = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    assert torch.allclose(haze.apply(images, params), one_by_one, atol=1e-6)
    depth_batch = color_attenuation_depth(images)
    assert depth_batch.shape == (4, 1, 48, 48)
    assert torch.allclose(depth_batch[2], color_attenuation_depth(images[2]), atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="depth"):
        DepthHaze(depth="lidar")
    with pytest.raises(ValueError, match="beta"):
        DepthHaze(beta=-0.5)
    with pytest.raises(ValueError, match="airlight"):
        DepthHaze(airlight=(0.7, 1.2))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        DepthHaze()(torch.zeros(1, 3, 8, 8), _gen(0))
    with pytest.raises(ValueError, match="1 or 3"):
        color_attenuation_depth(torch.zeros(2, 8, 8))
