"""Issue #29: a Gaussian smear is taken out of k̂ (its phase is right, its high frequencies too weak)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import fftconvolve

from restore.data.kernels import gaussian_kernel
from restore.semiblind import (
    HyperLaplacianConfig,
    KernelRefinementConfig,
    hyper_laplacian_deconvolution,
    line_motion_kernel,
    refine_kernel,
    search_smear,
    unsmear_kernel,
)
from tests.semiblind.test_noise_aware import _camera, _circular_8bit, psnr


def _smeared(k: np.ndarray, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """k ⊛ Gaussian(σ) on k's grid grown by 3σ + 1 px (nothing cut off), and k on that grid."""
    r = int(np.ceil(3 * sigma)) + 1
    k = np.pad(k, r)
    s = fftconvolve(k, gaussian_kernel(2 * r + 1, sigma).double().numpy(), mode="same").clip(0)
    return torch.from_numpy(s / s.sum()).float(), torch.from_numpy(k).float()


@pytest.fixture(scope="module")
def kernel() -> np.ndarray:
    """A bent 17-px motion path: two lines at different angles, joined."""
    a, b = line_motion_kernel(11, 20.0, size=17), line_motion_kernel(9, 75.0, size=17)
    k = np.roll(a, (0, -3), (0, 1)) + np.roll(b, (-3, 3), (0, 1))
    return k / k.sum()


def test_unsmear_kernel_undoes_a_gaussian_smear(kernel):
    smeared, k = _smeared(kernel, 0.8)
    out = unsmear_kernel(smeared, 0.8)
    assert out.shape == smeared.shape and out.min() >= 0 and abs(float(out.sum()) - 1) < 1e-5
    assert float((out - k).norm()) < 0.35 * float((smeared - k).norm())
    assert torch.equal(unsmear_kernel(smeared, 0.0), smeared)


@pytest.fixture(scope="module")
def scene(kernel):
    x = _camera(128, 60, 180)
    k = torch.from_numpy(kernel).float()
    return x, k, _circular_8bit(x, k)


def test_smear_search_keeps_the_exact_kernel(scene):
    x, k, y = scene
    out, sigma = search_smear(y, k)
    assert sigma == 0.0 and out is k


def test_smear_search_takes_out_most_of_a_smear_and_the_restoration_gains(scene, kernel):
    x, k, y = scene
    smeared, _ = _smeared(kernel, 1.0)
    out, sigma = search_smear(y, smeared)
    assert 0.5 <= sigma <= 1.4
    cfg = HyperLaplacianConfig(boundary="periodic")
    assert psnr(hyper_laplacian_deconvolution(y, out, cfg), x) > psnr(hyper_laplacian_deconvolution(y, smeared, cfg),
                                                                       x) + 1.0


def test_refinement_reports_the_smear_it_took_out_and_the_switch_reaches_it(scene, kernel):
    x, k, y = scene
    smeared, _ = _smeared(kernel, 1.0)
    fast = {"outer_iterations": 0, "rotation": False, "scale": False}
    on = refine_kernel(y, smeared, KernelRefinementConfig(**fast))
    assert on.unsmeared > 0.4 and not on.kept and "smear taken out" in on.summary()
    off = refine_kernel(y, smeared, KernelRefinementConfig(**fast, smear=False))
    assert off.unsmeared == 0.0 and off.kept


@pytest.fixture
def scored_angles(monkeypatch) -> list[float]:
    """The angles the angle search resamples k̂ by (0°, k̂ itself, is not resampled), in order."""
    import restore.semiblind.kernels as kernels

    scored, rotate = [], kernels.rotate_kernel

    def recording(kernel, angle, mode="bicubic"):
        scored.append(angle)
        return rotate(kernel, angle, mode)

    monkeypatch.setattr(kernels, "rotate_kernel", recording)
    return scored


@pytest.mark.parametrize("refinements, tolerance", [(2, 1.25), (4, 0.47)])
def test_angle_search_refines_below_the_grid_step(scene, kernel, refinements, tolerance):
    """Each refinement halves the 7.5° grid's step: with two (1.875° steps) a 20° error is undone closer than the
    3.75° lattice's 18.75°, with four (0.47° steps, the default) to within 0.47°."""
    from restore.semiblind.kernel_refinement import search_rotation
    from restore.semiblind.kernels import rotate_kernel

    x, k, y = scene
    k_hat = torch.from_numpy(rotate_kernel(kernel, 20.0)).float()
    _, angle = search_rotation(y, k_hat, refinements=refinements)
    assert abs(angle + 20) < tolerance


def test_angle_search_does_not_refine_below_its_zero_resolution_around_k_hat(scene, kernel, scored_angles):
    """Around 0° (k̂ itself, the one candidate not resampled) the refinements stop at ``zero_resolution``: with the
    exact kernel the search stays at 0° and scores no angle below 1.875°; without the floor it goes finer."""
    from restore.semiblind.kernel_refinement import search_rotation

    x, k, y = scene
    k_exact = torch.from_numpy(kernel).float()
    # a ±7.5° grid (three angles) is enough to see the refinements around 0°
    assert search_rotation(y, k_exact, 7.5, refinements=4, zero_resolution=1.875)[1] == 0.0
    assert min(map(abs, scored_angles)) == pytest.approx(1.875)
    scored_angles.clear()
    search_rotation(y, k_exact, 7.5, refinements=4)
    assert min(map(abs, scored_angles)) < 1.875


@pytest.mark.parametrize("shape, sigma", [((23, 23), 0.7), ((31, 17), 2.0)])
def test_unsmear_kernels_circulant_products_are_the_fft_filter(shape, sigma):
    """unsmear_kernel applies the Gaussian by a circulant matrix per axis: the same operator as filtering by its
    transfer function on the FFT grid."""
    from restore.semiblind.kernels import _circulant_gaussian

    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (g_y, gg_y), (g_x, gg_x) = _circulant_gaussian(shape[0], sigma), _circulant_gaussian(shape[1], sigma)
    wy = torch.fft.fftfreq(shape[0], dtype=torch.float64)[:, None]
    wx = torch.fft.fftfreq(shape[1], dtype=torch.float64)[None]
    g = torch.exp(-2 * np.pi**2 * sigma**2 * (wy**2 + wx**2))
    assert torch.allclose(g_y @ x @ g_x.T, torch.fft.ifft2(g * torch.fft.fft2(x)).real, atol=1e-12)
    assert torch.allclose(gg_y @ x @ gg_x.T, torch.fft.ifft2(g * g * torch.fft.fft2(x)).real, atol=1e-12)


def test_angle_search_centred_elsewhere_stays_within_reach_and_scores_k_hat_there(scene, kernel, scored_angles):
    """``centre`` moves the grid: around −1.875° with a reach of 3.75° the exact kernel (0°, k̂ itself, scored
    because it lies within reach) wins and nothing beyond the reach is scored; around −17° the search finds the 20°
    error."""
    from restore.semiblind.kernel_refinement import search_rotation
    from restore.semiblind.kernels import rotate_kernel

    x, k, y = scene
    k_exact = torch.from_numpy(kernel).float()
    assert search_rotation(y, k_exact, 3.75, 3.75, refinements=3, zero_resolution=1.875, centre=-1.875)[1] == 0.0
    assert -5.625 <= min(scored_angles) and max(scored_angles) <= 1.875
    k_hat = torch.from_numpy(rotate_kernel(kernel, 20.0)).float()
    _, angle = search_rotation(y, k_hat, 3.75, 3.75, refinements=3, centre=-17.0)
    assert abs(angle + 20) < 1.0


def test_a_smeared_kernel_that_the_angle_search_turned_comes_back_unturned(scene, kernel):
    """k̂ smeared by 1.5 px, its angle right: the angle search, which sees the smear, turns it (by −1.41° here);
    the smear check, rescoring the angle on k̂ unsmeared before rotation (where 0° is k̂ itself), turns it back.
    Without the check the turn stays."""
    from dataclasses import replace

    x, k, y = scene
    smeared, _ = _smeared(kernel, 1.5)
    cfg = KernelRefinementConfig(outer_iterations=0, scale=False)
    refined = refine_kernel(y, smeared, cfg)
    assert refined.angle == 0.0 and refined.unsmeared >= 1.3
    assert refine_kernel(y, smeared, replace(cfg, smear_rotation_check=False)).angle != 0.0
