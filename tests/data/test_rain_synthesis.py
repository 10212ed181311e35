"""Rain100-style rain: deterministic per seed, screen-blended (never darker), one dominant direction."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from kornia.filters import spatial_gradient

from restore.data import LayeredRainStreaks
from restore.data.rain_synthesis import screen_blend, streak_layers


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _uniform(layers: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(layers, 1, size, size, generator=_gen(seed))


def _image(channels: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    coarse = torch.rand(1, channels, size // 8, size // 8, generator=_gen(seed))
    return 0.05 + 0.9 * F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("preset", ["light", "heavy"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_range_and_determinism_per_seed(preset, channels):
    rain, img = LayeredRainStreaks(preset), _image(channels)
    a, b, c = rain(img, _gen(3)), rain(img, _gen(3)), rain(img, _gen(4))
    assert a.shape == img.shape and a.dtype == img.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("preset", ["light", "heavy"])
def test_screen_blend_never_darkens_and_streaks_are_gray(preset):
    img = _image(3)
    out = LayeredRainStreaks(preset)(img, _gen(0))
    assert (out >= img).all()
    assert (out > img + 0.05).any()
    # a gray layer screened over each channel: (1 − out)/(1 − img) is the same factor in every channel
    factor = (1 - out) / (1 - img)
    assert torch.allclose(factor, factor[:1].expand_as(factor), atol=1e-5)
    assert torch.equal(screen_blend(img, torch.zeros(1, 64, 64)), img)
    assert torch.allclose(screen_blend(img, torch.ones(1, 64, 64)), torch.ones_like(img))


def _direction_error(layer: torch.Tensor, angle: float) -> float:
    """Direction (degrees from vertical) along which the layer varies least (the structure tensor's eigenvector
    of the smaller eigenvalue, Sobel gradients), minus ``angle``."""
    grad = spatial_gradient(layer.reshape(1, 1, *layer.shape[-2:]))[0, 0]  # (2, H, W): d/dx, d/dy
    gx, gy = grad[0], grad[1]
    tensor = torch.tensor([[float((gx * gx).sum()), float((gx * gy).sum())],
                           [float((gx * gy).sum()), float((gy * gy).sum())]], dtype=torch.float64)
    dx, dy = torch.linalg.eigh(tensor).eigenvectors[:, 0].tolist()
    if dy < 0:
        dx, dy = -dx, -dy
    return math.degrees(math.atan2(-dx, dy)) - angle  # a streak leaning right runs down-left: (−sin a, cos a)


@pytest.mark.parametrize("angle", [-20.0, 0.0, 15.0])
def test_streaks_follow_the_dominant_direction(angle):
    """Positive angles lean the top of a streak to the right; the layer barely varies along it."""
    layer = streak_layers(_uniform(1, 128, 1), [0.004], [31], [0.5], [angle], (0.5, 1.0))
    assert layer.shape == (1, 1, 128, 128)
    assert abs(_direction_error(layer, angle)) <= 4.0
    rain = LayeredRainStreaks("heavy", angle=angle, angle_jitter=0.0)
    out, img = rain(torch.zeros(1, 128, 128), _gen(2)), torch.zeros(1, 128, 128)
    assert abs(_direction_error(out - img, angle)) <= 4.0


def test_streak_length_and_brightness_follow_their_settings():
    short = streak_layers(_uniform(1, 96, 5), [0.003], [5], [0.4], [0.0], (1.0, 1.0))
    long = streak_layers(_uniform(1, 96, 5), [0.003], [41], [0.4], [0.0], (1.0, 1.0))
    assert long.mean() > 4 * short.mean()  # the same seeds, drawn 8× longer
    # each streak keeps its drop's brightness along its axis (not 1/length of it, as a plain average would)
    assert long.amax() == pytest.approx(1.0, abs=1e-4)
    dim = streak_layers(_uniform(1, 96, 6), [0.003], [41], [0.4], [0.0], (0.3, 0.3))
    on_axis = dim[dim > 0.2]  # streak axes (the rest: the drops' soft flanks)
    assert float(((on_axis - 0.3).abs() < 0.012).float().mean()) > 0.6


def test_heavy_rain_covers_more_than_light_rain():
    img = torch.zeros(3, 96, 96)
    light = torch.stack([LayeredRainStreaks("light")(img, _gen(s)).mean() for s in range(6)]).mean()
    heavy = torch.stack([LayeredRainStreaks("heavy")(img, _gen(s)).mean() for s in range(6)]).mean()
    assert heavy > 1.5 * light > 0


@pytest.mark.parametrize("preset", ["light", "heavy"])
def test_batched_apply_equals_the_per_sample_path(preset):
    """A batch rendered at once (each image with its parameters and generator) = each image on its own."""
    rain, images = LayeredRainStreaks(preset), torch.stack([_image(3, 48, seed=s) for s in range(4)])
    one_by_one = torch.stack([rain(img, _gen(10 + i)) for i, img in enumerate(images)])
    generators = [_gen(10 + i) for i in range(4)]
    samples = [rain.sample(g, (48, 48)) for g in generators]
    assert all(v.shape == samples[0][k].shape for s in samples for k, v in s.items())  # fixed shapes: they collate
    params = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    batched = rain.apply(images, params, generators)
    assert torch.allclose(batched, one_by_one, atol=1e-6)
    if preset == "heavy":
        assert len(set(params["count"].tolist())) > 1  # images with different layer counts in one batch


def test_overrides_replace_preset_values_and_bad_values_are_named():
    rain = LayeredRainStreaks("heavy", layers=2, opacity=0.5)
    assert rain.layers == (2, 2) and rain.opacity == (0.5, 0.5) and rain.length == (20.0, 60.0)
    with pytest.raises(ValueError, match="preset"):
        LayeredRainStreaks("drizzle")
    with pytest.raises(ValueError, match="density"):
        LayeredRainStreaks(density=0)
    with pytest.raises(ValueError, match="opacity"):
        LayeredRainStreaks(opacity=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        LayeredRainStreaks()(torch.zeros(1, 3, 8, 8), _gen(0))
