"""Issue #29: a speckled k̂ (a raw blind estimate) is cleaned; a too-long k̂ is shortened on a smaller gain, or
without the sharpened rivals' lead, where GCV confirms it, the kernel taken is resampled bicubic, and its factor is
placed by the unsmeared full-band likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation, label

from restore.data.camera_shake import camera_shake_kernel
from restore.semiblind import (
    KernelRefinementConfig,
    despeckle_kernel,
    kernel_length,
    perturb_kernel,
    refine_kernel,
    search_scale,
)
from restore.semiblind.kernels import rescale_kernel
from tests.semiblind.test_noise_aware import _camera, _circular_8bit
from tests.semiblind.test_smear import _smeared


@pytest.fixture(scope="module")
def shake() -> torch.Tensor:
    """A camera-shake kernel (Boracchi & Foi's model, seeded: 19 × 19, a 17-px path)."""
    return camera_shake_kernel(torch.Generator().manual_seed(0), anxiety=0.005, exposure=(0.5, 1.0), size=(13, 27))


def _speckled(k: torch.Tensor, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k smeared by a 1-px Gaussian, that plus 10 %-of-max noise on its support grown by 2 px, clipped at 0 (a raw
    blind estimate, as perturb_kernel's ``noise`` makes it), and k, all on k's grid grown by 4 px."""
    smeared, true = (t.double().numpy() for t in _smeared(k.double().numpy(), 1.0))
    near = binary_dilation(smeared > 0.01 * smeared.max(), iterations=2)
    noise = 0.1 * smeared.max() * np.random.default_rng(seed).standard_normal(smeared.shape) * near
    noisy = (smeared + noise).clip(0)
    return smeared, noisy / noisy.sum(), true


def test_despeckle_clears_a_noisy_estimates_specks_and_leaves_a_clean_kernel(shake):
    smeared, noisy, true = _speckled(shake)
    assert label(noisy >= 0.05 * noisy.max(), structure=np.ones((3, 3)))[1] > 1  # specks beside the path
    out, level = despeckle_kernel(noisy)
    assert 0 < level <= 0.2
    out = out.double().numpy()
    assert (out[noisy <= level * noisy.max()] == 0).all() and out.sum() == pytest.approx(1, abs=1e-6)
    path = smeared >= 0.05 * smeared.max()
    assert out[~path].sum() < 0.35 * noisy[~path].sum()  # the speckle beside the path: mostly gone
    assert np.linalg.norm(out - true) < np.linalg.norm(noisy - true)
    clean, level = despeckle_kernel(smeared)  # one connected piece: untouched
    assert level == 0.0 and np.allclose(clean.double().numpy(), smeared, atol=1e-7)


def test_refinement_reports_the_despeckling_and_does_not_count_the_kernel_kept(shake):
    noisy = _speckled(shake)[1]
    x = _camera(96, 60, 180)
    y = _circular_8bit(x, shake)
    quick = KernelRefinementConfig(scale=False, rotation=False, smear=False, outer_iterations=0)
    r = refine_kernel(y, torch.from_numpy(noisy).float(), quick)
    assert r.despeckled > 0 and not r.kept and "specks" in r.summary()
    r = refine_kernel(y, torch.from_numpy(noisy).float(), KernelRefinementConfig(
        despeckle=False, scale=False, rotation=False, smear=False, outer_iterations=0))
    assert r.despeckled == 0 and r.kept


@pytest.fixture(scope="module")
def too_long(shake):
    """The camera crop blurred (circular, 8-bit) by the shake kernel, and that kernel 15 % too long."""
    y = _circular_8bit(_camera(128, 60, 180), shake)
    return y, torch.from_numpy(perturb_kernel(shake, length=0.15 * kernel_length(shake.numpy()))).float()


def _low_band_gain(y: torch.Tensor, k_hat: torch.Tensor, kernel: torch.Tensor) -> float:
    """Nats/px the low band's marginal likelihood gains from k̂ to ``kernel`` (as search_scale scores them)."""
    from restore.semiblind.kernel_refinement import gaussian_marginal_nll
    from restore.semiblind.plug_and_play import estimate_noise_sigma

    sigma = max(estimate_noise_sigma(y), KernelRefinementConfig().sigma_floor)
    return gaussian_marginal_nll(y, k_hat, sigma, max_frequency=0.15) - gaussian_marginal_nll(
        y, kernel, sigma, max_frequency=0.15)


def test_length_search_takes_a_small_gain_only_where_gcv_confirms_it(too_long):
    """With the full margin just above the shortening's gain, k̂ is kept; with the smaller margin the shortening is
    taken if GCV confirms it (here it halves: ≤ ×0.9), and a stricter confirmation (×0.3) keeps k̂, undisputed."""
    from restore.semiblind.kernel_refinement import gcv_score

    y, k_hat = too_long
    found = search_scale(y, k_hat)
    assert found.factor < 0.95 and not found.disputed
    gain = _low_band_gain(y, k_hat, found.kernel)
    assert gain > 0.005 and gcv_score(y, found.kernel, 0.25) < 0.6 * gcv_score(y, k_hat, 0.25)
    above = gain + 0.01
    low_band = {"scale_smear_steps": 0}  # the margins act before the full-band placement (tested below)
    strict = search_scale(y, k_hat, KernelRefinementConfig(scale_margin=above, scale_margin_agreed=above,
                                                           scale_margin_confirmed=above, **low_band))
    assert strict.factor == 1.0 and strict.kernel is k_hat
    agreed = search_scale(y, k_hat, KernelRefinementConfig(scale_margin=above, **low_band))
    assert agreed.factor < 0.95 and not agreed.disputed
    unconfirmed = search_scale(y, k_hat, KernelRefinementConfig(scale_margin=above, gcv_agreement=0.3, **low_band))
    assert unconfirmed.factor == 1.0 and not unconfirmed.disputed
    # the kernel taken is the bicubic resampling (the candidates were scored bilinear)
    bicubic = rescale_kernel(k_hat.double().numpy(), agreed.factor, across=agreed.across, mode="bicubic")
    assert torch.allclose(agreed.kernel, torch.from_numpy(bicubic).float())
    bilinear = rescale_kernel(k_hat.double().numpy(), agreed.factor, across=agreed.across)
    assert bicubic.shape != bilinear.shape or not np.allclose(bicubic, bilinear)


def test_a_clear_gcv_confirmation_waives_the_rivals_lead(too_long):
    """The sharpened rivals' lead (the rescaling must beat k̂^p by it) is waived where GCV drops to ≤
    ``gcv_confirmation`` × k̂'s (here < 0.6, above): with a lead no rescaling could clear, the shortening is still
    taken; not with the waiver off, nor for a k̂ that a rotation resampled."""
    y, k_hat = too_long
    no_lead = {"rival_margin": 1.0, "rival_clear_gain": 1.0, "scale_smear_steps": 0}
    assert search_scale(y, k_hat, KernelRefinementConfig(**no_lead)).factor < 0.95
    assert search_scale(y, k_hat, KernelRefinementConfig(**no_lead, gcv_confirmation=0.0)).factor == 1.0
    rotated = KernelRefinementConfig(**no_lead, scale_margin_rotated=0.0)
    assert search_scale(y, k_hat, rotated, rotated=True).factor == 1.0


def test_length_search_places_the_factor_by_the_unsmeared_full_band_likelihood(monkeypatch):
    """k̂ 15 % too long in both directions (true factor 1/1.15 ≈ 0.870). On this 128² crop the low band alone puts
    the factor a step and a half off (0.85); the last step picks, within ±0.025 of it, the factor whose kernel, its
    smear taken out, the full band finds most likely: proportional still (along = across), and closer to 1/1.15.
    On a noisy y (the smear search's gate) the step is skipped."""
    k = camera_shake_kernel(torch.Generator().manual_seed(7), anxiety=0.005, exposure=(0.5, 1.0), size=(13, 27))
    y = _circular_8bit(_camera(128, 60, 180), k)
    k_hat = torch.from_numpy(perturb_kernel(k, length=0.15 * kernel_length(k.numpy()))).float()
    truth = 1 / 1.15
    low_band = search_scale(y, k_hat, KernelRefinementConfig(scale_smear_steps=0))
    found = search_scale(y, k_hat)
    assert found.factor == found.across and low_band.factor == low_band.across
    assert abs(found.factor - truth) < abs(low_band.factor - truth) - 0.01
    assert abs(found.factor - low_band.factor) <= 0.025 + 1e-9
    import restore.semiblind.kernel_refinement as refinement

    def no_smear_search(*args, **kwargs):
        raise AssertionError("the full-band placement ran on a noisy y")

    monkeypatch.setattr(refinement, "_unsmeared", no_smear_search)
    noisy = (y + 0.02 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert search_scale(noisy, k_hat).factor < 1.0


def test_gcv_picks_among_the_likelihoods_near_ties(too_long, monkeypatch):
    """Among the rescalings within ``scale_gcv_tie`` nats/px of the low band's most likely, the one of lowest GCV is
    taken; with no tie window GCV scores only the most likely (and k̂)."""
    import restore.semiblind.kernel_refinement as refinement

    scored: list[tuple[torch.Tensor, float]] = []
    gcv = refinement.gcv_score

    def recording(y, kernel, max_frequency=None):
        scored.append((kernel, gcv(y, kernel, max_frequency)))
        return scored[-1][1]

    monkeypatch.setattr(refinement, "gcv_score", recording)
    y, k_hat = too_long
    low_band = {"scale_smear_steps": 0}  # the full-band placement would move the pick
    alone = search_scale(y, k_hat, KernelRefinementConfig(scale_gcv_tie=0.0, **low_band))
    assert len(scored) == 2 and alone.factor < 0.95
    scored.clear()
    tied = search_scale(y, k_hat, KernelRefinementConfig(scale_gcv_tie=0.05, **low_band))
    rescalings = [(k, s) for k, s in scored if k is not k_hat]
    assert len(rescalings) > 2
    assert tied.factor < 0.95 and (tied.factor, tied.across) != (alone.factor, alone.across)
    # the candidates were scored bilinear (the kernel taken is the bicubic resampling)
    bilinear = torch.from_numpy(rescale_kernel(k_hat.double().numpy(), tied.factor, across=tied.across)).float()
    taken = next(s for k, s in rescalings if k.shape == bilinear.shape and torch.allclose(k, bilinear))
    assert taken == min(s for _, s in rescalings)


def test_a_clear_gcv_confirmation_needs_only_the_confirmed_margin(too_long):
    """With both likelihood margins above the shortening's gain, k̂ is kept, unless GCV confirms the shortening
    clearly (≤ ``gcv_confirmation`` × k̂'s): then ``scale_margin_confirmed`` is the margin. Not for a rotated k̂."""
    y, k_hat = too_long
    low_band = {"scale_smear_steps": 0}
    found = search_scale(y, k_hat, KernelRefinementConfig(**low_band))
    scored = rescale_kernel(k_hat.double().numpy(), found.factor, across=found.across)  # bilinear, as scored
    gain = _low_band_gain(y, k_hat, torch.from_numpy(scored).float())
    above = {"scale_margin": gain + 0.01, "scale_margin_agreed": gain + 0.01, **low_band}
    assert search_scale(y, k_hat, KernelRefinementConfig(**above, scale_margin_confirmed=gain + 0.01)).factor == 1.0
    confirmed = search_scale(y, k_hat, KernelRefinementConfig(**above, scale_margin_confirmed=gain - 0.001))
    assert confirmed.factor < 0.95 and not confirmed.disputed
    unconfirmed = KernelRefinementConfig(**above, scale_margin_confirmed=0.0, gcv_confirmation=0.0)
    assert search_scale(y, k_hat, unconfirmed).factor == 1.0
    rotated = KernelRefinementConfig(**above, scale_margin_confirmed=0.0, scale_margin_rotated=gain + 0.01)
    assert search_scale(y, k_hat, rotated, rotated=True).factor == 1.0
