"""Issue #29: a raw blind estimate k̂ (specks beside a noisy path). The output keeps k̂'s frame where clearing the
specks moved its centroid — the kernel is re-centred as the cleaned one and the image moved by the clearing's
sub-pixel shift (a band-limited translation) — and on a noise-free y the final step regularises as for a kernel that
does not explain y."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from restore.semiblind import (
    HyperLaplacianConfig,
    KernelRefinementConfig,
    deblur_semiblind,
    despeckle_kernel,
    refine_kernel,
    translate_image,
)
from restore.semiblind import api as semiblind_api
from restore.semiblind.kernel_refinement import KernelRefinement
from restore.semiblind.kernels import kernel_centroid
from tests.semiblind.test_kernel_errors import _speckled, shake  # noqa: F401  (shake: a fixture)
from tests.semiblind.test_noise_aware import _camera, _circular_8bit


def test_translate_image_is_the_band_limited_shift():
    x = torch.rand(1, 2, 31, 33)
    torch.testing.assert_close(translate_image(x, (2.0, -3.0)), torch.roll(x, (2, -3), dims=(-2, -1)))
    there = translate_image(x, (0.3, -0.45))
    assert (there - x).abs().max() > 0.05  # it moved ...
    torch.testing.assert_close(translate_image(there, (-0.3, 0.45)), x, atol=1e-5, rtol=0)  # ... and comes back
    # not periodic: a smooth non-periodic scene moves by the shift; the symmetric extension keeps the edge close
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(48.0), indexing="ij")
    scene = lambda dy, dx: torch.sin(0.21 * (yy - dy) + 0.13 * (xx - dx))[None, None] + 0.01 * (xx - dx)  # noqa: E731
    moved = translate_image(scene(0, 0), (0.4, -0.3), circular=False)
    motion = float((scene(0, 0) - scene(0.4, -0.3)).abs().max())
    error = (moved - scene(0.4, -0.3)).abs()
    assert error[..., 4:-4, 4:-4].max() < 0.05 * motion  # 0.2 × motion with a 16-px mirror pad instead


def test_refinement_re_centres_as_the_cleaned_kernel_and_reports_the_clearings_move(shake):  # noqa: F811
    noisy = torch.from_numpy(_speckled(shake)[1]).float()
    y = _circular_8bit(_camera(96, 60, 180), shake)
    quick = dict(scale=False, rotation=False, smear=False, outer_iterations=0)
    r = refine_kernel(y, noisy, KernelRefinementConfig(**quick))
    clean = despeckle_kernel(noisy)[0]
    moved = np.array(kernel_centroid(clean)) - np.array(kernel_centroid(noisy))
    assert r.despeckled > 0 and np.allclose(r.translation, moved, atol=1e-5) and np.abs(moved).max() > 0.02
    m = (r.kernel.shape[0] - noisy.shape[0]) // 2
    centre = lambda k: np.array(kernel_centroid(k)) - m  # noqa: E731  (on k̂'s grid)
    assert np.abs(centre(r.kernel) - kernel_centroid(clean)).max() <= 0.5 + 1e-5
    off = refine_kernel(y, noisy, KernelRefinementConfig(**quick, recentre_despeckled=False))
    assert off.translation == (0.0, 0.0) and np.abs(centre(off.kernel) - kernel_centroid(noisy)).max() <= 0.5 + 1e-5
    kept = refine_kernel(y, shake, KernelRefinementConfig(**quick))
    assert kept.kept and kept.translation == (0.0, 0.0)


def test_the_api_moves_its_image_by_the_translation_into_the_given_kernels_frame(monkeypatch):
    """A refinement whose kernel is k̂ one pixel to the right says so (translation (0, 1)): the image restored
    with it sits one pixel to the left of k̂'s frame, and the api moves it back."""
    k = torch.zeros(9, 9)
    k[4, 1:8] = 1 / 7
    x = _camera(64, 80, 200)
    x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="circular"), 3, 1)  # a little smoother: the test is the shift
    y = _circular_8bit(x, k)
    moved = torch.roll(F.pad(k, (2, 2, 2, 2)), 1, dims=1)

    def fake_refinement(translation):
        return lambda y, k_hat, cfg: KernelRefinement(moved, False, 1.0, 1.0, 0.0, False, 0.0, 0.0, False, None,
                                                      1 / 255, True, translation)

    psnr = lambda a: float(10 * torch.log10(1 / ((a - x) ** 2)[..., 8:-8, 8:-8].mean()))  # noqa: E731
    results = {}
    for t in ((0.0, 1.0), (0.0, 0.0)):
        monkeypatch.setattr(semiblind_api, "refine_kernel_fn", fake_refinement(t))
        results[t] = deblur_semiblind(y, k, prior="hyper_laplacian").image
    assert psnr(results[(0.0, 1.0)]) > psnr(results[(0.0, 0.0)]) + 5
    torch.testing.assert_close(results[(0.0, 1.0)], torch.roll(results[(0.0, 0.0)], 1, dims=-1), atol=1e-5, rtol=0)
    assert math.isfinite(psnr(results[(0.0, 1.0)])) and psnr(results[(0.0, 1.0)]) > 30


def test_a_speckled_estimate_takes_the_distrusted_weight_on_a_noise_free_y_only(shake):  # noqa: F811
    noisy = torch.from_numpy(_speckled(shake)[1]).float()
    x = _camera(96, 60, 180)
    quick = dict(scale=False, rotation=False, smear=False, outer_iterations=0)
    psnr = lambda a: float(10 * torch.log10(1 / ((a - x) ** 2)[..., 8:-8, 8:-8].mean()))  # noqa: E731
    y = _circular_8bit(x, shake)
    ruled = deblur_semiblind(y, noisy, refine=quick, device="cpu")
    weight = HyperLaplacianConfig().distrusted_weight
    assert ruled.log.prior == "hyper_laplacian" and f"carried specks (a raw estimate, its path noisy too), so weight " \
        f"{weight:g}" in ruled.log.reason
    # without the rule, and with the sensitivity test disarmed: weight 0.1, worse
    plain = deblur_semiblind(y, noisy, refine=quick, device="cpu",
                             hyper_laplacian={"distrust_speckled": False, "max_sensitivity": 10.0})
    assert "specks" not in plain.log.reason and "weight 0.1" in plain.log.reason
    assert psnr(ruled.image) > psnr(plain.image) + 0.1
    noisy_y = deblur_semiblind(_circular_8bit(x, shake, 0.01), noisy, refine=quick, device="cpu")
    assert "specks" not in noisy_y.log.reason and "weight 0.1" in noisy_y.log.reason
    clean_k = deblur_semiblind(y, shake, refine=quick, device="cpu")  # no specks: the rule does not apply
    assert "specks" not in clean_k.log.reason
