"""Camera-shake simulator: exposure integration, centring by centre of mass, sizes, the degradation's options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from restore.data import CameraShakeBlur, camera_shake_kernel
from restore.data.camera_shake import exposure_psf


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _centroid(k: torch.Tensor) -> tuple[float, float]:
    k = k.double() / k.sum()
    yy, xx = torch.meshgrid(torch.arange(k.shape[0], dtype=k.dtype), torch.arange(k.shape[1], dtype=k.dtype),
                            indexing="ij")
    return float((k * yy).sum()), float((k * xx).sum())


def _line(length: float, angle: float, n: int = 401, start: tuple[float, float] = (0.3, -0.7)) -> torch.Tensor:
    t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
    return torch.tensor(start, dtype=torch.float64) + t * length * torch.tensor([math.cos(angle), math.sin(angle)],
                                                                               dtype=torch.float64)


def test_exposure_integrates_the_first_fraction_of_the_path_centred_by_its_centre_of_mass():
    path = _line(20.0, 0.0)
    for exposure, expected in ((1.0, 20.0), (0.5, 10.0), (0.23, 4.6)):
        k = exposure_psf(path, exposure, min_size=7, max_size=41)
        assert k.shape[0] % 2 == 1 and 7 <= k.shape[0] <= 41 and abs(float(k.sum()) - 1) < 1e-6
        cy, cx = _centroid(k)
        assert abs(cy - k.shape[0] // 2) < 1e-5 and abs(cx - k.shape[1] // 2) < 1e-5
        # a horizontal line: one row, unit time density per sample, as long as the exposed path
        xs = torch.arange(k.shape[1], dtype=torch.float64) - k.shape[1] // 2
        spread = math.sqrt(float((k.double().sum(0) * xs**2).sum()))
        assert spread == pytest.approx(expected / math.sqrt(12), rel=0.06)
        assert float(k.sum(1).max()) > 0.99  # all of it on the centre row
    # a sub-pixel shift of the whole path changes nothing (centring), a 90° turn transposes the kernel
    torch.testing.assert_close(exposure_psf(path + torch.tensor([0.37, 0.81], dtype=torch.float64), 0.6),
                               exposure_psf(path, 0.6), rtol=0, atol=1e-6)
    turned = exposure_psf(_line(20.0, math.pi / 2), 0.6)
    torch.testing.assert_close(turned, exposure_psf(path, 0.6).T, rtol=0, atol=1e-6)


def test_paths_too_large_for_the_biggest_kernel_are_shrunk_about_their_centroid():
    k = exposure_psf(_line(90.0, 0.3), 1.0, min_size=7, max_size=41)
    assert k.shape == (41, 41)
    cy, cx = _centroid(k)
    assert abs(cy - 20) < 1e-5 and abs(cx - 20) < 1e-5 and k[:, 0].sum() < 1e-6  # still inside, not clipped
    with pytest.raises(ValueError, match="exposure"):
        exposure_psf(_line(5.0, 0.0), 0.0)
    with pytest.raises(ValueError, match="odd"):
        exposure_psf(_line(5.0, 0.0), 1.0, min_size=8)


def test_random_kernels_are_reproducible_centred_and_sized_7_to_41():
    a = [camera_shake_kernel(_gen(s)) for s in range(40)]
    b = [camera_shake_kernel(_gen(s)) for s in range(40)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert len({tuple(k.shape) for k in a}) > 3  # kernels of many sizes
    for k in a:
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and 7 <= k.shape[0] <= 41
        cy, cx = _centroid(k)
        assert abs(cy - k.shape[0] // 2) < 1e-4 and abs(cx - k.shape[1] // 2) < 1e-4

    # longer exposures make larger blurs (same trajectories: the exposure is drawn first, then the path)
    def rms(k):
        cy, cx = _centroid(k)
        yy, xx = torch.meshgrid(torch.arange(k.shape[0]), torch.arange(k.shape[1]), indexing="ij")
        return math.sqrt(float((k * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum()))

    short = [rms(camera_shake_kernel(_gen(s), exposure=0.1)) for s in range(20)]
    long = [rms(camera_shake_kernel(_gen(s), exposure=1.0)) for s in range(20)]
    assert all(s < lo for s, lo in zip(short, long))


def test_blur_is_a_convolution_with_the_centred_psf_and_does_not_shift_the_image():
    blur = CameraShakeBlur(sigma=0, quantize=False)
    image = torch.zeros(3, 81, 81)
    image[:, 40, 40] = 1.0
    out = blur(image, _gen(3))
    kernel = blur.kernel(_gen(3))
    s = kernel.shape[0]
    # the point spreads into the PSF itself (a convolution: not flipped), centred on the point
    torch.testing.assert_close(out[0, 40 - s // 2:40 + s // 2 + 1, 40 - s // 2:40 + s // 2 + 1], kernel,
                               rtol=0, atol=1e-6)
    cy, cx = _centroid(out[0])
    assert abs(cy - 40) < 1e-4 and abs(cx - 40) < 1e-4
    assert torch.equal(out, blur(image, _gen(3))) and not torch.equal(out, blur(image, _gen(4)))


def test_noise_and_8_bit_rounding_are_options():
    image = torch.rand(3, 48, 48, generator=_gen(0))
    clean = CameraShakeBlur(sigma=0, quantize=False)(image, _gen(1))
    rounded = CameraShakeBlur(sigma=0, quantize=True)(image, _gen(1))
    assert torch.equal(rounded, (clean * 255).round() / 255) and not torch.equal(rounded, clean)
    noisy = CameraShakeBlur(sigma=2.55, quantize=False)(image, _gen(1))
    residual = (noisy - clean)[:, 8:-8, 8:-8]  # away from the clipping at 0 and 1: σ of 2.55/255
    assert 0.006 < float(residual.std()) < 0.014 and noisy.min() >= 0 and noisy.max() <= 1
    assert CameraShakeBlur().task == "deblur" and "CameraShakeBlur(" in repr(CameraShakeBlur())
    for bad in (dict(exposure=(0.0, 1.0)), dict(size=(8, 41)), dict(anxiety=(-1.0, 0.0)), dict(max_length=0)):
        with pytest.raises(ValueError):
            CameraShakeBlur(**bad)


def test_tiny_images_blur_with_replicate_borders():
    out = CameraShakeBlur(exposure=1.0, sigma=0, quantize=False)(torch.rand(1, 6, 6, generator=_gen(0)), _gen(0))
    assert out.shape == (1, 6, 6) and torch.isfinite(out).all()
    assert F.mse_loss(out, out.mean().expand_as(out)) < 0.1
