"""Degradations: deterministic per seed, and each changes the image in the expected direction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restore.data import (
    AddGaussianNoise,
    GaussianBlur,
    Haze,
    JPEGCompression,
    KernelBlur,
    LowLight,
    MotionBlur,
    RainStreaks,
    apply_degradations,
)
from restore.data.degradations import task_name_of

# ranges everywhere: with fixed parameters a blur or JPEG is (rightly) the same for every seed
ALL = {
    "awgn": AddGaussianNoise(sigma=(0, 50)),
    "awgn_levels": AddGaussianNoise(sigma_choices=[15, 25, 50]),
    "motion_blur": MotionBlur(kernel_size=9),
    "gaussian_blur": GaussianBlur(sigma=(0.5, 2.0)),
    "anisotropic_gaussian_blur": GaussianBlur(sigma=(0.5, 2.0), anisotropic=True),
    "jpeg_pillow": JPEGCompression(quality=(10, 40)),
    "jpeg_kornia": JPEGCompression(quality=(10, 40), backend="kornia"),
    "rain": RainStreaks(),
    "haze": Haze(),
    "low_light": LowLight(),
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """A smooth image with edges, in (0.1, 0.9)."""
    g = _gen(seed)
    coarse = torch.rand(1, channels, size // 4, size // 4, generator=g)
    return 0.1 + 0.8 * F.interpolate(coarse, size=(size, size), mode="nearest")[0]


def _high_freq_energy(img: torch.Tensor) -> float:
    return float(img.diff(dim=-1).pow(2).mean() + img.diff(dim=-2).pow(2).mean())


@pytest.mark.parametrize("degradation", ALL.values(), ids=ALL.keys())
@pytest.mark.parametrize("channels", [1, 3])
def test_same_seed_identical_different_seed_different(degradation, channels):
    img = _image(channels)
    a, b = degradation(img, _gen(7)), degradation(img, _gen(7))
    c = degradation(img, _gen(8))
    assert a.shape == img.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, img)
    if not isinstance(degradation, AddGaussianNoise):
        assert a.min() >= 0 and a.max() <= 1


def test_awgn_std_matches_sigma_and_is_unclipped_by_default():
    img = torch.full((3, 64, 64), 0.5)
    for sigma in (15, 25, 50):
        noisy = AddGaussianNoise(sigma)(img, _gen(0))
        assert float((noisy - img).std() * 255) == pytest.approx(sigma, rel=0.05)
    dark = torch.zeros(3, 32, 32)
    assert AddGaussianNoise(50)(dark, _gen(0)).min() < 0  # DnCNN-style: not clipped
    assert AddGaussianNoise(50, clip=True)(dark, _gen(0)).min() == 0


def test_awgn_sigma_range_draws_within_range():
    img = torch.full((1, 64, 64), 0.5)
    stds = [float((AddGaussianNoise((10, 20))(img, _gen(s)) - img).std() * 255) for s in range(20)]
    assert 9 < min(stds) and max(stds) < 21 and max(stds) - min(stds) > 3
    with pytest.raises(ValueError, match="sigma"):
        AddGaussianNoise((30, 10))


def test_awgn_sigma_choices_draws_only_the_listed_levels():
    img = torch.full((1, 128, 128), 0.5)
    noise = AddGaussianNoise(sigma_choices=[15, 25, 50])
    stds = [float((noise(img, _gen(s)) - img).std() * 255) for s in range(30)]
    levels = [min((15, 25, 50), key=lambda level: abs(level - std)) for std in stds]
    assert all(abs(std - level) < 0.05 * level for std, level in zip(stds, levels))  # nothing in between
    assert set(levels) == {15, 25, 50}
    assert "sigma_choices=(15.0, 25.0, 50.0)" in repr(noise)
    assert AddGaussianNoise().sigma == (25.0, 25.0)  # the default is unchanged
    with pytest.raises(ValueError, match="sigma or sigma_choices, not both"):
        AddGaussianNoise(25, sigma_choices=[15, 50])
    for bad in ([], [-5, 15]):
        with pytest.raises(ValueError, match="sigma"):
            AddGaussianNoise(sigma_choices=bad)


@pytest.mark.parametrize("blur", [MotionBlur(kernel_size=11, extent=(0.6, 1.0)), GaussianBlur(sigma=2.0)],
                         ids=["motion", "gaussian"])
def test_blur_lowers_high_frequency_energy_and_keeps_the_mean(blur):
    img = _image(3, 48)
    out = blur(img, _gen(0))
    assert _high_freq_energy(out) < 0.7 * _high_freq_energy(img)
    assert float(out.mean()) == pytest.approx(float(img.mean()), abs=0.01)


def test_motion_blur_does_not_shift_the_image():
    img = torch.zeros(1, 41, 41)
    img[0, 20, 20] = 1.0
    for seed in range(5):
        out = MotionBlur(kernel_size=15)(img, _gen(seed))[0]
        ys, xs = torch.meshgrid(torch.arange(41.0), torch.arange(41.0), indexing="ij")
        assert float((out * xs).sum() / out.sum()) == pytest.approx(20, abs=0.5)
        assert float((out * ys).sum() / out.sum()) == pytest.approx(20, abs=0.5)


def test_kernel_blur_is_the_spatial_convolution_with_its_file_kernel(tmp_path):
    kernel = torch.rand(5, 5, generator=_gen(1), dtype=torch.float64)
    path = tmp_path / "k.txt"
    np.savetxt(path, kernel.numpy() * 3)  # unnormalised on disk: normalised on load
    blur = KernelBlur(str(path))
    img = _image(3, 24)
    out = blur(img)
    # reference: correlation with the normalised kernel, reflect-padded, computed by hand
    k = (kernel / kernel.sum()).float()
    ref = F.conv2d(F.pad(img[:, None], (2, 2, 2, 2), mode="reflect"), k[None, None])[:, 0].clamp(0, 1)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(KernelBlur(kernel)(img), out, atol=1e-6, rtol=0)  # tensor or file: the same
    assert "k.txt" in repr(blur)


@pytest.mark.parametrize("bad", [torch.ones(3), torch.tensor([[1.0, -0.5], [0.2, 0.3]]),
                                 torch.tensor([[float("nan"), 1.0]]), torch.zeros(3, 3)],
                         ids=["1d", "negative", "nan", "zero-sum"])
def test_kernel_blur_refuses_bad_kernels_by_name(bad):
    with pytest.raises(ValueError, match="KernelBlur needs a 2-D, finite, non-negative kernel"):
        KernelBlur(bad)


def test_kernel_blur_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        KernelBlur(str(tmp_path / "nope.txt"))


def test_jpeg_lower_quality_larger_error_and_8bit_output():
    img = _image(3, 64)
    errors = [float((JPEGCompression(q)(img, _gen(0)) - img).abs().mean()) for q in (90, 30, 5)]
    assert errors[0] < errors[1] < errors[2]
    out = JPEGCompression(50)(img, _gen(0))
    assert torch.equal(out, (out * 255).round() / 255)  # real codec: 8-bit values
    assert JPEGCompression(50)(_image(1, 64), _gen(0)).shape == (1, 64, 64)


def test_rain_only_brightens_and_adds_streaks():
    img = _image(3, 64)
    out = RainStreaks(density=0.01)(img, _gen(0))
    assert (out >= img - 1e-6).all()
    assert float(out.mean()) > float(img.mean()) + 0.005
    assert float(((out - img) > 0.1).float().mean()) > 0.01
    assert RainStreaks()(_image(1, 8), _gen(0)).shape == (1, 8, 8)  # streaks clipped to tiny images


def test_haze_raises_the_mean_towards_the_airlight_and_lowers_local_contrast():
    img = _image(3, 48) * 0.5
    out = Haze(beta=1.5, airlight=0.9)(img, _gen(0))
    assert float(out.mean()) > float(img.mean())
    assert abs(float(out.mean()) - 0.9) < abs(float(img.mean()) - 0.9)
    assert _high_freq_energy(out) < _high_freq_energy(img)  # local contrast scaled by t < 1
    haze = Haze(beta=1.0)
    t = haze.transmission({k: v[None] for k, v in haze.sample(_gen(0), (32, 32)).items()}, 32, 32)
    assert t.shape == (1, 1, 32, 32) and 0 < t.min() and t.max() <= 1
    assert _high_freq_energy(t) < 0.01  # a smooth map


def test_low_light_darkens():
    img = _image(3, 32)
    out = LowLight()(img, _gen(0))
    assert float(out.mean()) < 0.7 * float(img.mean())


def test_composed_list_applies_in_order_and_names_the_task():
    img = _image(3, 32)
    chain = [MotionBlur(kernel_size=9), AddGaussianNoise(10)]
    g1, g2 = _gen(0), _gen(0)
    expected = chain[1](chain[0](img, g1), g1)
    assert torch.equal(apply_degradations(img, chain, g2), expected)
    assert task_name_of(chain) == "deblur+denoise"
    assert task_name_of([AddGaussianNoise(5), AddGaussianNoise(10)]) == "denoise"
    assert AddGaussianNoise(5, task="gray_denoise").task == "gray_denoise"
