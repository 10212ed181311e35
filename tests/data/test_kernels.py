"""Blur-kernel synthesis: normalisation, determinism, centring, Gaussian moments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from kornia.filters import get_gaussian_kernel2d

from restore.data import KernelBlur
from restore.data.kernels import (
    center_kernel,
    gaussian_kernel,
    load_kernel,
    random_motion_kernel,
    random_motion_trajectory,
)

SHARED_KERNELS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "kernels"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _centroid(img: torch.Tensor) -> tuple[float, float]:
    """Centre of mass (row, column) over the last two dims."""
    ys, xs = torch.meshgrid(torch.arange(float(img.shape[-2])), torch.arange(float(img.shape[-1])), indexing="ij")
    return float((img * ys).sum() / img.sum()), float((img * xs).sum() / img.sum())


@pytest.mark.parametrize("size", [9, 21])
def test_motion_kernel_is_normalised_centred_and_spread(size):
    for seed in range(5):
        k = random_motion_kernel(size, _gen(seed))
        assert k.shape == (size, size) and k.dtype == torch.float32
        assert (k >= 0).all() and float(k.sum()) == pytest.approx(1.0, abs=1e-5)
        cy, cx = _centroid(k)
        # centred on its centre of mass: blurring does not shift the image against gt
        assert cx == pytest.approx((size - 1) / 2, abs=0.5) and cy == pytest.approx((size - 1) / 2, abs=0.5)
        assert int((k > 1e-3).sum()) > 4, "a motion kernel spreads over several pixels"


def test_motion_kernel_is_deterministic_for_a_seed():
    assert torch.equal(random_motion_kernel(15, _gen(3)), random_motion_kernel(15, _gen(3)))
    assert not torch.equal(random_motion_kernel(15, _gen(3)), random_motion_kernel(15, _gen(4)))


def test_motion_kernel_extent_controls_blur_size():
    small = random_motion_kernel(31, _gen(0), extent=0.2)
    large = random_motion_kernel(31, _gen(0), extent=1.0)
    assert int((small > 0).sum()) < int((large > 0).sum())
    with pytest.raises(ValueError, match="extent"):
        random_motion_kernel(31, _gen(0), extent=1.5)


def test_trajectory_has_the_requested_arc_length():
    path = random_motion_trajectory(40.0, num_steps=300, generator=_gen(1))
    assert path.shape == (300, 2)
    assert float(path.diff(dim=0).norm(dim=1).sum()) == pytest.approx(40.0, rel=1e-6)


def test_gaussian_kernel_isotropic_matches_kornia_and_anisotropic_has_the_right_moments():
    iso = gaussian_kernel(11, 1.5)
    assert torch.allclose(iso, get_gaussian_kernel2d((11, 11), (1.5, 1.5))[0], atol=1e-6)
    aniso = gaussian_kernel(41, 4.0, 1.0, angle=np.pi / 2)  # long axis rotated onto y
    r = torch.arange(41.0) - 20
    ys, xs = torch.meshgrid(r, r, indexing="ij")
    var_x, var_y = float((aniso * xs**2).sum()), float((aniso * ys**2).sum())
    assert float(aniso.sum()) == pytest.approx(1.0, abs=1e-5)
    assert var_y == pytest.approx(16.0, rel=0.05) and var_x == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel(10, 1.0)


def test_load_kernel_normalises_and_names_bad_files(tmp_path):
    np.savetxt(tmp_path / "k.txt", np.ones((5, 5)) * 3)
    k = load_kernel(tmp_path / "k.txt")
    assert k.shape == (5, 5) and float(k.sum()) == pytest.approx(1.0)
    np.savetxt(tmp_path / "bad.txt", np.zeros((5, 5)))
    with pytest.raises(ValueError, match="bad.txt"):
        load_kernel(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_kernel(tmp_path / "missing.txt")


@pytest.mark.skipif(not SHARED_KERNELS.is_dir(), reason="../shared/data/kernels not present")
def test_load_shared_kernels():
    assert load_kernel(SHARED_KERNELS / "kernels12_k10.txt").shape == (25, 25)
    assert float(load_kernel(SHARED_KERNELS / "k_large_1.png").sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("offset", [(0.0, 0.0), (1.6, -2.3), (-3.0, 0.5)])
def test_center_kernel_puts_the_centre_of_mass_on_the_centre_pixel(offset):
    # an off-centre blob: a Gaussian whose centre is `offset` px away from the middle of an 11×9 array
    yy, xx = torch.meshgrid(torch.arange(11.0), torch.arange(9.0), indexing="ij")
    k = torch.exp(-((yy - 5 - offset[0]) ** 2 + (xx - 4 - offset[1]) ** 2) / 2) * (1 + (xx > 4))
    centred = center_kernel(k)
    side = centred.shape[0]
    assert centred.shape == (side, side) and side % 2 == 1
    assert float(centred.sum()) == pytest.approx(1.0, abs=1e-6) and float(centred.min()) >= 0
    cy, cx = _centroid(centred)
    assert cy == pytest.approx(side // 2, abs=1e-4) and cx == pytest.approx(side // 2, abs=1e-4)


def test_kernel_blur_with_center_does_not_shift_the_image():
    k = torch.zeros(9, 9)
    k[1, 6], k[2, 7] = 0.5, 0.5  # 3 px off-centre: as a file kernel, it shifts the image
    img = torch.zeros(1, 41, 41)
    img[0, 20, 20] = 1.0
    shifted = _centroid(KernelBlur(k)(img)[0])
    assert abs(shifted[0] - 20) > 2 and abs(shifted[1] - 20) > 2
    cy, cx = _centroid(KernelBlur(k, center=True)(img)[0])
    assert cy == pytest.approx(20, abs=1e-4) and cx == pytest.approx(20, abs=1e-4)
