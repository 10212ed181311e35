"""Kernel refinement from an inaccurate kernel k̂ (no ground truth involved).

Three steps, a clean-up before them and a smear search between the second and the third:

0. :func:`~restore.semiblind.kernels.despeckle_kernel`: a noisy estimate's isolated specks cleared (a clean kernel,
   one connected piece, is left alone);
1. :func:`search_scale`: stretch or shorten k̂ about its centroid — along its motion (principal axis) only,
   proportionally in both directions, or along it and thinner across it — by the factors that maximise the
   Gaussian marginal likelihood of y in its low band, p(y | k) = N(0, K S Kᵀ + σ²I) with a stationary
   power-law image prior S(ω) = A/|∇(ω)|² (A profiled out), per frequency of the windowed y:

       −log p(y | k) = Σ_ω |Y(ω)|² / (|K(ω)|² S(ω) + σ²) + log(|K(ω)|² S(ω) + σ²)   (+ const).

   Maximum-likelihood blur identification (Lagendijk, Tekalp & Biemond, Optical Engineering 1990; Levin et
   al., "Understanding and evaluating blind deconvolution algorithms", CVPR 2009, Sec. 3: MAP_k with x
   marginalised has no no-blur bias, unlike the joint MAP_{x,k} of step 3). It sees |K| only, so it leaves the
   translation alone. A rescaling is taken only if it beats k̂ by a margin (a smaller one where the second
   criterion below agrees clearly), beats every sharpened k̂^p (a smeared k̂ is thick because of the smear, not
   its length) and lowers the generalised cross-validation score too (:func:`gcv_score`; Reeves & Mersereau,
   IEEE TIP 1992), a second criterion that assumes no spectrum; the kernel taken is resampled bicubic;
2. :func:`search_rotation`: rotate k̂ about its centroid by the angle (±45°) whose TV deconvolution fits y
   best (maximum likelihood over kernels of equal spread);
2b. :func:`search_smear`: take out of the kernel the Gaussian smear (a smeared estimate's, or the resampling's of
   steps 1–2) of highest full-band marginal likelihood, on a noise-free y; if one is taken, the angle is searched
   once more within ±3.75° (a smear biases step 2 towards small rotations; near 0°, on k̂ unsmeared before it is
   rotated, so that 0° is k̂ itself);
3. free-form refinement on k̂'s support grown by a margin, alternating (Perrone & Favaro, "Total variation
   blind deconvolution: the devil is in the details", CVPR 2014, Alg. 1; Cho & Lee, "Fast motion
   deblurring", SIGGRAPH Asia 2009, Eq. 8 for the gradient-domain k-step)

       x ← TV deconvolution of y with k        (:func:`~restore.semiblind.plug_and_play.tv_deconvolution`)
       θ ← Adam steps on  Σ_d ‖valid(k_θ ⊗ ∂_d x) − ∂_d y‖² / (2σ²N) + α‖k_θ − k̂‖²/‖k̂‖² + β·Σ√k_θ/√|S|,

   with k_θ = softmax(θ) over the support S (SelfDeblur, Ren et al., CVPR 2020, Eq. 6: k ≥ 0 and Σk = 1 by
   construction) and σ the noise level estimated from y. The tie α to k̂ is there because joint MAP in (x, k)
   drifts to the no-blur kernel without it (Levin et al. 2009), and for the same reason the free-form kernel is
   kept only if the full-band marginal likelihood of step 1 prefers it to its start by a margin.

Every threshold is :class:`KernelRefinementConfig`'s, set on BSD400 training crops; the measurements behind
them are in ``docs/methods/semiblind.md``. Hand-written: no library here implements blind kernel estimation
for torch tensors. Kernel translation is inherent (k shifted by t and x by −t fit y equally): the refined
kernel is re-centred (to the nearest pixel) so its centroid keeps k̂'s offset from the kernel centre — the cleaned
k̂'s, where specks were cleared, and the image is then moved by the sub-pixel shift the clearing caused
(:attr:`KernelRefinement.translation`), so that it sits in k̂'s frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

# rms_radius re-exported: kernel_is_trusted's length test
from restore.semiblind.hyper_laplacian import QUANTISATION_SIGMA, estimate_noise_level, periodic_component, wraps_around
from restore.semiblind.kernels import despeckle_kernel, kernel_centroid, rms_radius, unsmear_kernel
from restore.semiblind.operators import BlurOperator, fast_fft_shape
from restore.semiblind.plug_and_play import TVConfig, estimate_noise_sigma, tv_deconvolution

__all__ = ["KernelRefinementConfig", "KernelRefinement", "ScaleSearch", "refine_kernel", "search_rotation",
           "search_scale", "search_smear", "gaussian_marginal_nll", "gcv_score", "misfit", "valid_convolution",
           "kernel_is_trusted", "rms_radius"]


@dataclass(frozen=True)
class KernelRefinementConfig:
    """Settings of :func:`refine_kernel` and of ``prior="auto"``'s trust test (:func:`kernel_is_trusted`).

    Set on BSD400 training crops, never on the test sets; the measurements are in ``docs/methods/semiblind.md``.
    """

    # before step 1: clear a noisy estimate's isolated specks (:func:`~restore.semiblind.kernels.despeckle_kernel`)
    despeckle: bool = True
    despeckle_max_level: float = 0.2  # clear taps up to the speck level, at most this fraction of the max
    # step 1, the length search (:func:`search_scale`)
    scale: bool = True  # rescale k̂ by the maximum-marginal-likelihood factors
    scale_factors: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1, 1.25, 1.4, 1.6)  # along the motion
    # across it, for a thinner path: none by default (dev, k̂ 15 % too long, 20 runs: thinned 0.625–0.825 in 9,
    # −4.66 dB mean gap after the smear search; without them −2.95)
    scale_across_factors: tuple[float, ...] = ()
    scale_refine_step: float = 0.05  # local refinement of the grid's optimum ...
    scale_refinements: int = 2  # ... this many times, the step halved each time
    # last, the factor within ± this many of the last refinement's steps whose kernel, its smear taken out, the full
    # band finds most likely (noise-free y; see search_scale). 0: the low band's optimum
    scale_smear_steps: int = 2
    scale_margin: float = 0.015  # nats/px (low band) a rescaled k̂ must gain over k̂ as given ...
    scale_margin_rotated: float = 0.04  # ... and after a rotation (a resampled kernel "gains" by shrinking)
    # ... or this much (k̂ not rotated) where GCV agrees clearly: the rescaling lowers it to ≤ gcv_agreement × k̂'s
    # (dev: the 17-px kernel 15 % too long gained 0.008–0.013 in 6 of 16 runs, 5 with GCV ×0.50–0.89; exact
    # kernels' best rescaling gained ≤ 0.002 and did not lower GCV)
    scale_margin_agreed: float = 0.005
    gcv_agreement: float = 0.9
    # ... or this much where GCV confirms it clearly (≤ gcv_confirmation × k̂'s, below): the most an exact kernel's
    # best rescaling gained on dev
    scale_margin_confirmed: float = 0.002
    scale_max_frequency: float | None = 0.15  # the likelihood on |ω| ≤ this (cycles/px) only: the length shows there
    scale_isotropic: bool = True  # also score k̂ rescaled in both directions and thinned across the motion
    sharpen_powers: tuple[float, ...] = (1.5, 2.0, 3.0)  # rival explanations of a thick k̂: k̂^p
    rival_margin: float = 0.01  # nats/px the rescaling must beat every rival by ...
    rival_clear_gain: float = 0.04  # ... unless it gains this much over k̂ (then beating them is enough)
    # ... or (k̂ not rotated) where GCV drops to ≤ this × k̂'s (dev, 40 runs per kind: paths 15 % too long 0.18–0.52,
    # the best rescaling of exact, smeared and blind-style k̂s ≥ 0.77; the lead had kept 3 of 60 too-long paths, −12 to
    # −14 dB)
    gcv_confirmation: float = 0.6
    gcv_max_frequency: float | None = 0.25  # the rescaling must lower GCV on |ω| ≤ this too (None: no GCV check)
    # among the rescalings this close (nats/px) to the low band's most likely, GCV picks (dev: a 15 %-too-long path
    # with near-equal optima ×0.75 and ×0.85, 0.0005 apart, was kept for the first's GCV ratio 1.07; the second's
    # is 0.40). 0: the most likely alone
    scale_gcv_tie: float = 0.002
    scale_first: bool | None = None  # rescale then rotate (True), the other way (False), or both, the more likely
    # step 2, the angle search (:func:`search_rotation`)
    rotation: bool = True
    # its rotations, and the rescaling the length search takes, are bicubic: bilinear smooths a thin path
    # (:func:`~restore.semiblind.kernels.rotate_kernel`; the length search still scores its candidates bilinear, with
    # which its thresholds were set: bicubic scores missed a 15-px-too-long line)
    resampling: str = "bicubic"
    max_angle: float = 45.0
    # local refinements of the 7.5° grid's optimum, by 3.75°, 1.875°, … down to 0.47° (dev, 12 runs per cell, mean
    # gap: 1.875° left 20° at 18.75–20.6°; 0.47° with the floor below: rot20 −2.18 → −1.65, rot20 + smear 0.7
    # −2.35 → −1.79, rot30 −1.10 → −1.30, as 30° lies on the coarse grid) ...
    rotation_refinements: int = 4
    # ... but none below this while the optimum is k̂ itself (dev: refined around 0°, smeared k̂s were turned by
    # 0.47–0.94° in 11 of 24 runs, smear 1.5: −1.22 → −2.07 dB mean gap)
    rotation_zero_resolution: float = 1.875
    # the smear search (:func:`search_smear`), after steps 1–2: their resampling smears a thin path too, and searched
    # before them it took 1.9–2 px out of a wrongly rotated k̂ (dev), which then misled them
    smear: bool = True
    # re-search the angle of an unsmeared kernel locally (±3.75°; near 0°, rotations of k̂ unsmeared before rotating)
    smear_rotation_check: bool = True
    smear_sigmas: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 21))  # Gaussian σ (px) tried
    smear_prior_exponent: float = 3.6  # γ of the likelihood's image spectrum A/|ω|^γ (see search_smear)
    smear_margin: float = 0.001  # nats/px the unsmeared kernel must gain over k̂
    # ... on a (nearly) noise-free y only, σ̂ (given k̂) ≤ this: noise hides the high frequencies where a smear shows
    # (dev, σ = 0.01: it took 0.2–1.7 px out of 21 of 32 exact kernels, losing up to 2.8 dB). σ̂ given a smeared k̂
    # reads some image as noise (dev, noise-free: 0.0011–0.0033 with k̂ smeared by 0.7–1.5 px; σ = 0.01: ≥ 0.0101)
    smear_max_noise: float = 4 * QUANTISATION_SIGMA
    # step 3, the free-form kernel
    margin: float = 0.25  # support grown by max(2, margin × k̂ size) px on each side
    likelihood_check: bool = True  # keep the free-form kernel only if its marginal likelihood beats its start's
    likelihood_margin: float = 0.1  # ... by this much (nats/px, full band)
    outer_iterations: int = 6  # x-step / k-step alternations per pyramid level (0: no free-form step)
    # ... run only where σ̂ (given the searched kernel) exceeds this (None: always): on a noise-free y nothing checks
    # joint MAP's drift to a sharper-looking kernel (dev: taken in 5 of 132 noise-free runs, all blind-style
    # estimates, and worse than without it in 4); at σ = 0.01 it helped smeared k̂ and estimates
    free_form_min_noise: float | None = 4 * QUANTISATION_SIGMA
    x_iterations: int = 10  # HQS iterations of each TV x-step
    k_iterations: int = 60  # Adam steps of each k-step
    lr_kernel: float = 5e-2  # Adam lr on the softmax logits
    tv_weight: float = 0.3  # TV weight of the x-steps (× σ_n, see plug_and_play; 2× the restoring default)
    anchor: float = 0.5  # α: ties k to k̂ (relative squared error)
    sparsity: float = 0.0  # β: √k sparsity (relative to a uniform kernel's)
    min_kernel: int = 11  # coarsest level: k̂ downsampled to at least this size
    max_levels: int = 1  # pyramid levels (1: full resolution only; resampling a thin motion kernel blurs it)
    sigma_floor: float = 1.0 / 255  # lower bound of the estimated noise level (normalisation only)
    # clearing specks moves k̂'s centroid though its path stays: re-centre as the clean kernel and report that move as
    # ``translation``, which :func:`~restore.semiblind.api.deblur_semiblind` moves its image by, into k̂'s frame
    # (False: re-centred on k̂'s own centroid to the nearest pixel, translation (0, 0))
    recentre_despeckled: bool = True
    # prior="auto" (:func:`kernel_is_trusted`): a kept kernel is trusted if its full-band marginal likelihood beats
    # its sharpened kernel^trust_power's by trust_margin nats/px ...
    trust_power: float = 1.5
    trust_margin: float = 0.005
    trust_radius: float = 12.0  # ... or if it is this long (RMS radius, px): the sharpness check has no power there
    # the learned prior's image is dropped for TV's if it departs from TV's by more than this fraction of TV's own
    # change to y (:func:`~restore.semiblind.api.deblur_semiblind`)
    trust_departure: float = 0.7

    @property
    def x_step(self) -> TVConfig:
        """The TV x-step of the free-form refinement."""
        return TVConfig(iterations=self.x_iterations, tv_weight=self.tv_weight)


# the TV solve that scores a kernel in the angle search (:func:`misfit`): shorter than a restoring one
MISFIT_TV = TVConfig(iterations=12, tv_weight=0.3, cg_iterations=10)


class ScaleSearch(NamedTuple):
    """What :func:`search_scale` found."""

    kernel: torch.Tensor  # the rescaled kernel, or k̂ itself
    factor: float  # along-motion factor taken (1.0: k̂ kept)
    across: float  # across-motion factor taken
    disputed: bool  # k̂ was kept only because GCV disagreed with the likelihood (a sign that k̂ is wrong)


@dataclass(frozen=True)
class KernelRefinement:
    """What :func:`refine_kernel` did to k̂."""

    kernel: torch.Tensor  # the refined kernel (kh + 2m, kw + 2m), float32, ≥ 0, sum 1, centred like k̂
    kept: bool  # k̂ came through unchanged (bar the grown support) and unquestioned
    factor: float  # along-motion rescaling taken (1.0: none)
    across: float  # across-motion rescaling taken
    angle: float  # rotation taken (degrees)
    disputed: bool  # the length search's likelihood and GCV disagreed over k̂
    unsmeared: float  # Gaussian σ (px) taken out of k̂ in all (0: none; :func:`search_smear`)
    despeckled: float  # taps up to this fraction of k̂'s max cleared as speckle (0: none)
    free_form: bool  # the free-form kernel was taken
    free_form_gain: float | None  # its full-band marginal-likelihood gain over its start (nats/px; None: not run)
    sigma: float  # the noise level the refinement used
    noise_free: bool = False  # the free-form step was skipped: σ̂ given the searched kernel ≤ free_form_min_noise
    # (dy, dx) px the despeckling moved k̂'s centroid by: the kernel is re-centred as the clean one, so an image
    # restored with it sits this far from k̂'s frame (:func:`~restore.semiblind.operators.translate_image` by it puts
    # it there). (0, 0) where nothing was cleared
    translation: tuple[float, float] = (0.0, 0.0)

    def summary(self) -> str:
        """One line for the log."""
        steps = []
        if self.despeckled:
            steps.append(f"specks ≤ {self.despeckled:.2g}·max cleared")
        if self.unsmeared:
            steps.append(f"a {self.unsmeared:.2g}-px smear taken out")
        if (self.factor, self.across) != (1.0, 1.0):
            steps.append(f"rescaled ×{self.factor:g} along, ×{self.across:g} across")
        if self.angle:
            steps.append(f"rotated {self.angle:+g}°")
        if self.disputed:
            steps.append("length disputed (likelihood vs GCV)")
        if self.free_form_gain is not None:
            steps.append(f"free form {'taken' if self.free_form else 'dropped'} ({self.free_form_gain:+.4f} nats/px)")
        elif self.noise_free:
            steps.append("no free form (y noise-free)")
        return ("kept" if self.kept else "changed") + (": " + ", ".join(steps) if steps else "")


def valid_convolution(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """valid(k ⊗ x) by FFT, differentiable in both; x (B, C, EH, EW), k (kh, kw) → (B, C, EH−kh+1, EW−kw+1).
    The FFT grid is :class:`BlurOperator`'s (:func:`~restore.semiblind.operators.fast_fft_shape`)."""
    eh, ew = x.shape[-2:]
    kh, kw = k.shape
    s = fast_fft_shape((eh, ew))
    full = torch.fft.irfft2(torch.fft.rfft2(x, s=s) * torch.fft.rfft2(k, s=s), s=s)
    return full[..., kh - 1 : eh, kw - 1 : ew]


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical forward differences (valid): (…, H, W−1), (…, H−1, W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def _resize_kernel(k: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a kernel to (kh, kw) (odd), bilinear with antialiasing, clipped ≥ 0 and normalised."""
    out = F.interpolate(k[None, None], size=size, mode="bilinear", align_corners=True, antialias=True)[0, 0]
    out = out.clamp_min(0)
    return out / out.sum().clamp_min(1e-12)


def _odd(n: float) -> int:
    return max(3, int(round(n)) | 1)


def _sharpened(k: torch.Tensor, power: float) -> torch.Tensor:
    """k^power renormalised: the same path, thinner (a Gaussian cross-section narrows by √power)."""
    k = k.clamp_min(0) ** power
    return k / k.sum()


def _recentre(k: torch.Tensor, target: tuple[float, float]) -> torch.Tensor:
    """Integer-shift k (zero fill) so its centroid is within half a pixel of ``target``."""
    cy, cx = kernel_centroid(k)
    dy, dx = int(round(target[0] - cy)), int(round(target[1] - cx))
    if dy == 0 and dx == 0:
        return k
    kh, kw = k.shape
    out = torch.zeros_like(k)
    ys, yd = (slice(0, kh - dy), slice(dy, kh)) if dy >= 0 else (slice(-dy, kh), slice(0, kh + dy))
    xs, xd = (slice(0, kw - dx), slice(dx, kw)) if dx >= 0 else (slice(-dx, kw), slice(0, kw + dx))
    out[yd, xd] = k[ys, xs]
    return out / out.sum().clamp_min(1e-12)


def misfit(y: torch.Tensor, kernel: torch.Tensor, sigma: float, tv: TVConfig = MISFIT_TV) -> float:
    """RMS of y − valid(k⊗x_TV(k)), x_TV the TV deconvolution with k: the ML score of k (lower is better)."""
    op = BlurOperator(kernel.to(y.device, torch.float32), tuple(y.shape[-2:]))
    x = tv_deconvolution(y, op, tv, sigma)
    return float(((valid_convolution(x, kernel.to(x)) - y) ** 2).mean().sqrt())


def _windowed_spectra(y: torch.Tensor, kernel: torch.Tensor, periodic: bool = False) -> tuple[torch.Tensor, ...]:
    """Periodogram of the mean-removed, Hann-windowed channel mean of y (1, C, H, W) (the window tames the
    boundary's spectral leakage) — or, ``periodic``, of its periodic component unwindowed (y itself where it wraps
    around: exact for a circular blur, and no window widening K's spectral zeros) — |K(ω)|² of ``kernel`` on y's
    grid, the forward-difference power |D(ω)|², and the frequencies (cycles/px) as a (H, 1) and a (1, W) column;
    float64."""
    gray = y.double().mean(1)[0]
    h, w = gray.shape
    if periodic:
        gray = gray if wraps_around(gray) else periodic_component(gray)
        power = torch.fft.fft2(gray - gray.mean()).abs() ** 2 / (h * w)
    else:
        window = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64, device=y.device),
                             torch.hann_window(w, periodic=False, dtype=torch.float64, device=y.device))
        power = torch.fft.fft2((gray - gray.mean()) * window).abs() ** 2 / (window**2).sum()
    k_power = torch.fft.fft2(kernel.to(y.device, torch.float64), s=(h, w)).abs() ** 2
    wy = torch.fft.fftfreq(h, dtype=torch.float64, device=y.device)[:, None]
    wx = torch.fft.fftfreq(w, dtype=torch.float64, device=y.device)[None]
    d_power = 4 * torch.sin(math.pi * wy) ** 2 + 4 * torch.sin(math.pi * wx) ** 2
    return power, k_power, d_power, wy, wx


def gaussian_marginal_nll(y: torch.Tensor, kernel: torch.Tensor, sigma: float, kernel_smoothing: float = 0.0,
                          log10_prior_scales: tuple[float, float, int] = (-9.0, -1.0, 33),
                          max_frequency: float | None = None, exponent: float = 2.0, periodic: bool = False) -> float:
    """−log p(y | k) per pixel under a Gaussian power-law image prior, the prior's scale A profiled out.

    y (1, C, H, W) (its channel mean is used), kernel (kh, kw), sigma the noise std of y. The
    periodogram of the mean-removed, Hann-windowed y stands for |Y(ω)|²; S(ω) = A / |D(ω)|², |D|² the
    forward-difference power (natural images' 1/|ω|² spectrum). ``kernel_smoothing``: every kernel is scored
    after a Gaussian blur of this σ (px) (off by default: it evens out how resampled thin paths fall on the
    pixel grid, but also hides a free-form kernel's artefacts from the likelihood check). ``max_frequency``:
    only the frequencies |ω| ≤ this (cycles/px) are summed (still per pixel of y). ``exponent``: S(ω) = A / |D(ω)|^γ
    with γ this (2: the 1/|ω|² law; a steeper γ for photographs whose own optics and compression already damp
    the finest detail). ``periodic``: :func:`_windowed_spectra`'s unwindowed periodogram.
    Lower is more likely. Hand-written: a few FFT lines no library offers.
    """
    power, k_power, d_power, wy, wx = _windowed_spectra(y, kernel, periodic)
    h, w = power.shape
    d_power = d_power.clamp_min(1e-4)
    k_power = k_power * torch.exp(-4 * math.pi**2 * kernel_smoothing**2 * (wy**2 + wx**2))  # |Gaussian|²
    scales = torch.logspace(*log10_prior_scales, dtype=torch.float64, device=y.device)[:, None, None]
    variance = k_power * scales / d_power ** (exponent / 2) + sigma**2
    terms = power / variance + variance.log()
    if max_frequency is not None:
        terms = terms * ((wy**2 + wx**2) <= max_frequency**2)
    nll = terms.sum(dim=(-2, -1))
    return float(nll.min()) / (h * w)


def gcv_score(y: torch.Tensor, kernel: torch.Tensor, max_frequency: float | None = None,
              log10_weights: tuple[float, float, int] = (-6.0, 0.0, 25)) -> float:
    """Generalised cross-validation score of ``kernel`` for y (lower is better): blur identification by GCV
    (Reeves & Mersereau, "Blur identification by the method of generalized cross-validation", IEEE TIP 1992),
    minimised over the weight λ of a gradient-regularised (Tikhonov) deconvolution:

        GCV(k, λ) = mean_ω |1 − A(ω)|² |Y(ω)|² / (mean_ω (1 − A(ω)))²,   A = |K|² / (|K|² + λ|D|²),

    the influence (hat) matrix A diagonal in Fourier space (the windowed periodogram of
    :func:`gaussian_marginal_nll` stands for |Y|²). Unlike the marginal likelihood it assumes no image spectrum,
    no noise level and no prior scale: it scores how well a regularised deconvolution with k predicts each
    frequency of y from the others — a second opinion where y's spectrum is far from the likelihood's power
    law. ``max_frequency``: only |ω| ≤ this (cycles/px) enter both means. Hand-written: no
    library offers it.
    """
    power, k_power, d_power, wy, wx = _windowed_spectra(y, kernel)
    band = torch.ones_like(power) if max_frequency is None else ((wy**2 + wx**2) <= max_frequency**2).double()
    weights = torch.logspace(*log10_weights, dtype=torch.float64, device=y.device)[:, None, None]
    residual = weights * d_power / (k_power + weights * d_power).clamp_min(1e-30)  # 1 − A(ω), per λ
    n = band.sum()
    score = ((residual**2 * power * band).sum((-2, -1)) / n) / ((residual * band).sum((-2, -1)) / n) ** 2
    return float(score.min())


def search_scale(y: torch.Tensor, k_hat: torch.Tensor, config: KernelRefinementConfig | None = None,
                 sigma: float | None = None, rotated: bool = False) -> ScaleSearch:
    """Rescale k̂ about its centroid (:func:`~restore.semiblind.kernels.rescale_kernel`) by the (along, across)
    factors of highest low-band marginal likelihood (:func:`gaussian_marginal_nll` on |ω| ≤
    ``scale_max_frequency``), if that beats k̂ itself by ``scale_margin`` nats/px (``scale_margin_rotated`` for a
    k̂ that a rotation resampled: ``rotated``) and the along factor is not at either end of ``scale_factors``
    (then the family does not explain y); else k̂.

    Candidates: along the motion only (a longer or shorter path of the same thickness) and, with
    ``scale_isotropic``, the path scaled alike in both directions (its width follows its length, as
    :func:`~restore.semiblind.kernels.perturb_kernel`'s ``length`` error makes it) or thinned across it by
    ``scale_across_factors`` (none by default); the grid's optimum is refined within its family by
    ±``scale_refine_step``, then by half that, … (``scale_refinements`` times). A gain of only
    ``scale_margin_agreed`` is enough (k̂ not rotated) where GCV (below) drops to ≤ ``gcv_agreement`` × k̂'s, and
    ``scale_margin_confirmed`` where it drops to ≤ ``gcv_confirmation`` × k̂'s; the rescaling so tested is, of those
    within ``scale_gcv_tie`` nats/px of the low band's optimum, the one GCV prefers (the low band barely ranks some
    paths' lengths: two optima a step apart can be near-equal). On a noise-free y the factor taken is then placed
    by the full band, within ±``scale_smear_steps`` of the last refinement's steps, along-only or proportional:
    the rescaling whose kernel, its smear taken out
    (:func:`search_smear`'s likelihood), is most likely. The kernel returned is resampled by ``resampling``. Low band
    only: a smeared k̂ lacks y's high frequencies and the full-band likelihood "repairs" that by shrinking it,
    while the length shows in the low band (a path of L px has its first spectral zero at 1/L cycles/px). Two
    more tests guard against taking a smear for a length error. A sharpened k̂^p (``sharpen_powers``; a Gaussian
    cross-section narrows by √p) is a rival explanation of a thick k̂: the rescaling must beat every rival, by
    ``rival_margin`` when it gains less than ``rival_clear_gain`` over k̂ and GCV (below) does not drop to
    ≤ ``gcv_confirmation`` × k̂'s. And it must lower :func:`gcv_score` on
    |ω| ≤ ``gcv_max_frequency`` too: where y's spectrum is far from the likelihood's power law, a wrong shrink of
    a smeared k̂ can gain as much likelihood as the true kernel; GCV, which assumes no spectrum, tells them apart.

    Args:
        y: blurry image (1, C, H, W) (its channel mean is scored).
        k_hat: kernel (kh, kw); rescalings that would not fit the image are skipped.
        config: :class:`KernelRefinementConfig`.
        sigma: noise level of y (default: estimated on its channel mean).
        rotated: k̂ was resampled by a rotation (the stricter margin).
    """
    from restore.semiblind.kernels import rescale_kernel

    cfg = config or KernelRefinementConfig()
    margin = cfg.scale_margin_rotated if rotated else cfg.scale_margin
    sigma = max(sigma if sigma is not None else estimate_noise_sigma(y.float().mean(1, keepdim=True)), cfg.sigma_floor)
    k_np = k_hat.detach().double().cpu().numpy()
    grid = sorted(set(cfg.scale_factors) | {1.0})
    # (along, across) factor pairs: along the motion only, both ways alike, and thinner across the motion
    candidates = {(f, 1.0) for f in grid}
    if cfg.scale_isotropic:
        candidates |= {(f, f) for f in grid} | {(f, c) for f in grid for c in cfg.scale_across_factors}
    scores: dict[tuple[float, float], tuple[float, torch.Tensor]] = {}

    def score(key: tuple[float, float]) -> None:
        key = (round(key[0], 4), round(key[1], 4))
        if key in scores or min(key) <= 0:
            return
        k = k_hat if key == (1.0, 1.0) else torch.from_numpy(
            rescale_kernel(k_np, key[0], across=key[1])).float().to(k_hat.device)
        if key[0] != 1.0 and max(k.shape) > max(max(k_hat.shape), min(y.shape[-2:]) // 2):
            return  # larger than k̂ and than half the image: too large to be identified from it
        scores[key] = (gaussian_marginal_nll(y, k, sigma, max_frequency=cfg.scale_max_frequency), k)

    kept = ScaleSearch(k_hat, 1.0, 1.0, False)
    for key in sorted(candidates):
        score(key)
    reference = scores[(1.0, 1.0)][0]
    best = min(scores, key=lambda key: scores[key][0])
    if best == (1.0, 1.0) or best[0] in (grid[0], grid[-1]):
        return kept  # k̂ itself is the most likely, or the family does not explain y
    for level in range(cfg.scale_refinements):  # local refinements of the grid's optimum
        d = cfg.scale_refine_step / 2**level
        for key in [_refined(best, i * d, j * d) for i in (-1, 0, 1) for j in (-1, 0, 1)]:
            score(key)
        best = min(scores, key=lambda key: scores[key][0])
    gain = reference - scores[best][0]
    ratio = None  # GCV of the rescaling / k̂'s
    if cfg.gcv_max_frequency is not None and gain > 0:
        # the likelihood's near-ties (within scale_gcv_tie, inside the grid): the one GCV prefers
        ties = [key for key, (nll, _) in scores.items() if key == best or (
            key != (1.0, 1.0) and grid[0] < key[0] < grid[-1] and nll <= scores[best][0] + cfg.scale_gcv_tie)]
        gcv = {key: gcv_score(y, scores[key][1], cfg.gcv_max_frequency) for key in ties}
        best = min(gcv, key=gcv.get)
        gain = reference - scores[best][0]
        ratio = gcv[best] / gcv_score(y, k_hat, cfg.gcv_max_frequency)
    # a rival explanation of a thick k̂: the same path sharpened. If it beats every rescaling, k̂ is smeared rather
    # than too long: keep it (taking k̂^p itself lost PSNR). The lead is waived where GCV confirms the rescaling
    # clearly (k̂ not rotated)
    confirmed = not rotated and ratio is not None and ratio <= cfg.gcv_confirmation
    lead = cfg.rival_margin if gain < cfg.rival_clear_gain and not confirmed else 0.0
    for power in cfg.sharpen_powers:
        rival = gaussian_marginal_nll(y, _sharpened(k_hat, power), sigma, max_frequency=cfg.scale_max_frequency)
        if rival < scores[best][0] + lead:
            return kept
    agreed = margin if rotated or cfg.gcv_max_frequency is None else min(margin, cfg.scale_margin_agreed)
    if confirmed:
        agreed = min(agreed, cfg.scale_margin_confirmed)
    if gain < agreed:
        return kept
    if ratio is not None:
        if gain < margin and ratio > cfg.gcv_agreement:
            return kept  # a small gain, not clearly confirmed
        if ratio >= 1:
            return ScaleSearch(k_hat, 1.0, 1.0, True)  # a second, independent criterion disagrees: the gain may
            # be the model's error
    # the kernel taken is resampled by cfg.resampling: the search's bilinear smooths a thin path like a ~0.5-px smear
    # (dev, k̂ 15 % too long: hyper-Laplacian gap −2.65 → −1.52 dB); its thresholds were set on bilinear scores
    def resampled(key: tuple[float, float]) -> torch.Tensor:
        return scores[key][1] if cfg.resampling == "bilinear" and key in scores else torch.from_numpy(
            rescale_kernel(k_np, key[0], across=key[1], mode=cfg.resampling)).float().to(k_hat.device)

    gray = y.float().mean(1, keepdim=True)
    k = resampled(best)
    if cfg.scale_smear_steps and cfg.smear and (noise := estimate_noise_level(gray, k)) <= cfg.smear_max_noise:
        # the low band places the factor only to ~±0.0125 (dev: 0.825–0.8875 for 1/1.15), and a thin path's
        # deconvolution is sensitive to it (0.0125 off: up to 3 dB); the full band is precise but reads a smear as
        # a shorter path, unless the smear is taken out first: the factor of the most likely unsmeared kernel.
        # It also picks between along-only and proportional (it sees the width; dev: the low band kept 4 of 20
        # proportionally too-long paths as thick as k̂)
        _, smear, nll = _unsmeared(gray, k, cfg, noise)
        fits = {best: (nll, k)}
        near = tuple(s for s in cfg.smear_sigmas if abs(s - smear) <= 0.3 + 1e-9)  # the neighbours' smears: close
        d = cfg.scale_refine_step / 2**cfg.scale_refinements
        for j in range(-cfg.scale_smear_steps, cfg.scale_smear_steps + 1):
            f = round(best[0] + j * d, 4)
            for key in [(f, 1.0), (f, f)] if best[1] in (1.0, best[0]) else [(f, best[1])]:
                if f > 0 and key not in fits:
                    k_j = resampled(key)
                    fits[key] = (_unsmeared(gray, k_j, cfg, noise, near)[2], k_j)
        best = min(fits, key=lambda key: fits[key][0])
        k = fits[best][1]
    return ScaleSearch(k, best[0], best[1], False)


def _refined(best: tuple[float, float], da: float, dc: float = 0.0) -> tuple[float, float]:
    """A neighbour of the (along, across) optimum: along-only and proportional rescalings stay in their family
    (dev: refined across too, a path 15 % too long in both directions came out 1.075× thicker, −6.9 dB)."""
    if best[1] == best[0]:
        return (best[0] + da,) * 2
    if best[1] == 1.0:
        return (best[0] + da, 1.0)
    return (best[0] + da, best[1] + dc)


def search_rotation(y: torch.Tensor, k_hat: torch.Tensor, max_angle: float = 45.0, step: float = 7.5,
                    sigma: float | None = None, resampling: str = "bicubic", refinements: int = 1,
                    zero_resolution: float = 0.0, centre: float = 0.0) -> tuple[torch.Tensor, float]:
    """Rotate k̂ about its centroid by the angle (within ``centre`` ± max_angle°) that minimises :func:`misfit`.

    Maximum likelihood over a family of kernels of equal spread: unlike a free-form kernel, a rotated
    one cannot shrink towards the no-blur solution, so the misfit is an unbiased score here (it is
    not for rescaled kernels, where a shorter kernel always fits better). A coarse grid, then ``refinements``
    local refinements by step/2, step/4, …, but none finer than ``zero_resolution``° while the optimum is k̂
    itself (0°): k̂ is the one candidate not resampled, and next to it a resampled neighbour's score differs by
    its smoothing as much as by its angle. ``centre``: the grid's middle; 0° (k̂ itself) is scored too where it
    lies within reach. ``resampling``: :func:`~restore.semiblind.kernels.rotate_kernel`'s interpolation.
    y (1, C, H, W), k̂ (kh, kw) → (rotated kernel, angle in degrees).
    """
    from restore.semiblind.kernels import rotate_kernel

    gray = y.float().mean(1, keepdim=True)
    sigma = max(sigma if sigma is not None else estimate_noise_sigma(gray), 1.0 / 255)
    k_np = k_hat.detach().double().cpu().numpy()
    cache: dict[float, tuple[float, torch.Tensor]] = {}

    def score(angle: float) -> float:
        if angle not in cache:
            k = k_hat.float() if angle == 0 else torch.from_numpy(rotate_kernel(k_np, angle, resampling)).float()
            cache[angle] = (misfit(gray, k.to(gray.device), sigma), k)
        return cache[angle][0]

    grid = [float(a) for a in centre + np.arange(-max_angle, max_angle + 1e-9, step)]
    if abs(centre) <= max_angle:
        grid.append(0.0)
    best = min(grid, key=score)
    for i in range(1, refinements + 1):
        if best == 0 and step / 2**i < zero_resolution:
            break
        best = min((best - step / 2**i, best, best + step / 2**i), key=score)
    return cache[best][1], float(best)


def search_smear(y: torch.Tensor, k_hat: torch.Tensor, config: KernelRefinementConfig | None = None,
                 sigma: float | None = None) -> tuple[torch.Tensor, float]:
    """Take out of k̂ the Gaussian smear (σ in ``smear_sigmas``, :func:`~restore.semiblind.kernels.unsmear_kernel`)
    of highest marginal likelihood (:func:`gaussian_marginal_nll`, full band, the periodic y's unwindowed
    periodogram, image spectrum A/|ω|^γ with γ = ``smear_prior_exponent``), if it beats k̂ by ``smear_margin``
    nats/px, and y is (nearly) noise-free (σ̂ ≤ ``smear_max_noise``); returns (kernel, σ taken out, 0 for k̂ itself).

    A smeared k̂ — a blind estimate's, or any kernel resampled by a rotation or rescaling — has the true kernel's
    phase and too little |K| at high frequencies, so a deconvolution with it overshoots every edge; undoing the
    smear is a one-parameter family the likelihood can rank (no translation, no no-blur bias along it). The
    likelihood with γ = 2 under-estimates the smear (photographs' own finest detail is already damped), so γ is
    steeper; it was set on CBSD432 dev crops × camera-shake kernels (``docs/methods/semiblind.md``), where it
    took at most 0.3 px out of an exact kernel (7 of 32). ``sigma``: y's noise level (default: read where k̂ leaves noise
    only, :func:`~restore.semiblind.hyper_laplacian.estimate_noise_level`: the smear shows at the high
    frequencies a floored σ would drown).
    """
    cfg = config or KernelRefinementConfig()
    gray = y.float().mean(1, keepdim=True)
    sigma = estimate_noise_level(gray, k_hat) if sigma is None else max(sigma, QUANTISATION_SIGMA)
    if sigma > cfg.smear_max_noise:
        return k_hat, 0.0
    best, best_sigma, _ = _unsmeared(gray, k_hat, cfg, sigma)
    return best, best_sigma


def _unsmeared(gray: torch.Tensor, k_hat: torch.Tensor, cfg: KernelRefinementConfig, sigma: float,
               smears: tuple[float, ...] | None = None) -> tuple[torch.Tensor, float, float]:
    """:func:`search_smear`'s choice on the gray y among ``smears`` (default ``cfg.smear_sigmas``) and k̂ itself:
    (kernel, σ taken out, its −log-likelihood, k̂'s less the margin if k̂ is kept)."""

    def nll(k: torch.Tensor) -> float:
        return gaussian_marginal_nll(gray, k, sigma, exponent=cfg.smear_prior_exponent, periodic=True)

    best, best_nll, best_sigma = k_hat, nll(k_hat) - cfg.smear_margin, 0.0
    for s in cfg.smear_sigmas if smears is None else smears:
        k = unsmear_kernel(k_hat, s).to(k_hat.device)
        score = nll(k)
        if score < best_nll:
            best, best_nll, best_sigma = k, score, s
    return best, best_sigma, best_nll


class _Searched(NamedTuple):
    kernel: torch.Tensor
    factor: float
    across: float
    angle: float
    disputed: bool


def _unrotated(k_hat: torch.Tensor, searched: _Searched, cfg: KernelRefinementConfig) -> torch.Tensor:
    """k̂ with ``searched``'s rescaling only, the kernel its angle resamples (the principal axis turns with the
    kernel, so rescaling and rotation commute)."""
    from restore.semiblind.kernels import rescale_kernel

    if not searched.angle:
        return searched.kernel
    if (searched.factor, searched.across) == (1.0, 1.0):
        return k_hat
    return torch.from_numpy(rescale_kernel(k_hat.detach().double().cpu().numpy(), searched.factor,
                                           across=searched.across, mode=cfg.resampling)).float().to(k_hat.device)


def _search_scale_and_rotation(y: torch.Tensor, k_hat: torch.Tensor, cfg: KernelRefinementConfig,
                               sigma: float | None) -> _Searched:
    """Steps 1–2: rescale then rotate, rotate then rescale, or (``scale_first=None``) both, keeping the
    result of higher marginal likelihood (a length error misleads the rotation search and vice versa)."""
    orders = {True: [("scale", "rotation")], False: [("rotation", "scale")],
              None: [("scale", "rotation"), ("rotation", "scale")]}[cfg.scale_first]
    if not (cfg.scale and cfg.rotation):
        orders = orders[:1]
    # when the length search keeps k̂, both orders rotate k̂ itself: search once (the key tensor is kept in the
    # value so that its id cannot be reused by another kernel)
    rotated: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def rotate(k: torch.Tensor) -> tuple[torch.Tensor, float]:
        if id(k) not in rotated:
            k_rot, angle = search_rotation(y, k, cfg.max_angle, sigma=sigma, resampling=cfg.resampling,
                                           refinements=cfg.rotation_refinements,
                                           zero_resolution=cfg.rotation_zero_resolution)
            rotated[id(k)] = (k, k_rot.to(k_hat.device), angle)
        return rotated[id(k)][1:]

    results = []
    for order in orders:
        k, factor, across, angle, disputed = k_hat, 1.0, 1.0, 0.0, False
        for step in order:
            if step == "scale" and cfg.scale:
                # a rotated k̂ is resampled (and its fit to y already improved): the stricter margin
                k, factor, across, disputed = search_scale(y, k, cfg, sigma, rotated=k is not k_hat)
            if step == "rotation" and cfg.rotation:
                k, angle = rotate(k)
        results.append(_Searched(k, factor, across, angle, disputed))
    if len(results) == 1:
        return results[0]
    s = max(sigma if sigma is not None else estimate_noise_sigma(y.float().mean(1, keepdim=True)), cfg.sigma_floor)
    return min(results, key=lambda result: gaussian_marginal_nll(y, result.kernel, s))


def refine_kernel(y: torch.Tensor, k_hat: torch.Tensor, config: KernelRefinementConfig | None = None,
                  sigma: float | None = None) -> KernelRefinement:
    """Refine an inaccurate kernel k̂ on the blurry image y (no ground truth involved).

    Args:
        y: blurry image (1, C, H, W) in [0, 1].
        k_hat: inaccurate kernel (kh, kw), sum 1.
        config: :class:`KernelRefinementConfig`.
        sigma: noise level of y in [0, 1] units (default: :func:`estimate_noise_sigma`).

    Returns:
        :class:`KernelRefinement`: the refined kernel (kh + 2m, kw + 2m), float32, ≥ 0, sum 1 (m the support
        margin), centred like k̂; whether k̂ came through every step unchanged (bar the grown support) and
        unquestioned (the length search's likelihood and GCV did not disagree over it); and each step's outcome.
    """
    cfg = config or KernelRefinementConfig()
    y = y.float()
    k_hat = k_hat.to(y.device, torch.float32)
    k_hat = k_hat / k_hat.sum()
    # the output keeps k̂'s translation: its centroid sits as far from the centre as k̂'s does
    cy, cx = kernel_centroid(k_hat)
    offset = (cy - (k_hat.shape[0] - 1) / 2, cx - (k_hat.shape[1] - 1) / 2)
    despeckled = 0.0
    moved = (0.0, 0.0)  # how far clearing the specks moved the centroid (the path did not move)
    if cfg.despeckle:
        k_clean, despeckled = despeckle_kernel(k_hat, max_level=cfg.despeckle_max_level)
        if despeckled and cfg.recentre_despeckled:
            c_clean = kernel_centroid(k_clean)
            moved = (c_clean[0] - cy, c_clean[1] - cx)
        k_hat = k_clean.to(y.device) if despeckled else k_hat
    searched = _search_scale_and_rotation(y, k_hat, cfg, sigma)
    k_searched = searched.kernel.to(y.device)
    angle = searched.angle
    smears = []
    if cfg.smear:
        k_searched, smear = search_smear(y, k_searched, cfg)
        smears.append(smear)
        if smear and cfg.rotation and cfg.smear_rotation_check:
            # a smeared k̂'s angle search favours a small rotation (the resampled candidates are sharper, or merely
            # no worse): the angle once more within half a grid step, down to the main search's resolution. Where
            # 0° is within reach, of k̂ unsmeared before it is rotated, so that 0° is still the one candidate not
            # resampled (dev: a 1.5-px-smeared k̂'s lowest misfit was at −1.875° with the smear in, at 0° without);
            # farther out, of the rotated kernel unsmeared (rescored from k̂ there, 20° and 30° errors lost 0.9 dB in
            # 3 of 8 dev runs)
            reach = 3.75
            rescore = abs(angle) <= reach
            base = unsmear_kernel(_unrotated(k_hat, searched, cfg), smear).to(y.device) if rescore else k_searched
            k_turned, turned = search_rotation(y, base, reach, reach, sigma, cfg.resampling,
                                               max(cfg.rotation_refinements - 1, 0), cfg.rotation_zero_resolution,
                                               centre=angle if rescore else 0.0)
            turned = turned if rescore else angle + turned
            if turned != angle:
                k_searched, smear = search_smear(y, k_turned.to(y.device), cfg)
                smears.append(smear)
                angle = turned
    unsmeared = math.sqrt(sum(s * s for s in smears))  # Gaussian smears add in variance
    # no smear taken out, no rescaling, no rotation, and no dispute between the length search's two criteria
    kept = (k_searched.shape == k_hat.shape and torch.equal(k_searched, k_hat) and not searched.disputed
            and not despeckled)
    k_hat = k_searched
    m = max(2, int(round(cfg.margin * max(k_hat.shape))))
    m = max(0, min(m, (min(y.shape[-2:]) - max(k_hat.shape)) // 2))  # the grown kernel must still fit the image
    k_hat_pad = F.pad(k_hat, (m, m, m, m))
    kh, kw = k_hat_pad.shape
    # re-centred as the clean kernel; the image then moves by ``moved`` into k̂'s frame
    target = ((kh - 1) / 2 + offset[0] + moved[0], (kw - 1) / 2 + offset[1] + moved[1])
    sigma = max(sigma if sigma is not None else estimate_noise_sigma(y), cfg.sigma_floor)
    gray = y.mean(1, keepdim=True)  # the kernel is shared by the channels: estimate it on luminance

    noise_free = bool(cfg.outer_iterations) and cfg.free_form_min_noise is not None and (
        estimate_noise_level(gray, k_hat) <= cfg.free_form_min_noise)
    n_levels = 1 if cfg.outer_iterations and not noise_free else 0
    while 0 < n_levels < cfg.max_levels and max(kh, kw) / 2**n_levels >= cfg.min_kernel:
        n_levels += 1
    k = k_hat_pad
    for level in reversed(range(n_levels)):
        scale = 0.5**level
        size = (_odd(kh * scale), _odd(kw * scale)) if level else (kh, kw)
        hw = (max(8, round(y.shape[-2] * scale)), max(8, round(y.shape[-1] * scale))) if level else y.shape[-2:]
        y_l = F.interpolate(gray, size=hw, mode="bilinear", align_corners=False, antialias=True) if level else gray
        # downsampling by 2 halves the noise std of an area average (≈ the antialiased bilinear)
        sigma_l = max(sigma * scale, cfg.sigma_floor * scale)
        k_anchor = _resize_kernel(k_hat_pad, size) if level else k_hat_pad
        k = _refine_free_form(y_l, _resize_kernel(k, size), k_anchor, sigma_l, cfg)
    gain = None
    if cfg.likelihood_check and n_levels:
        nll_free, nll_start = gaussian_marginal_nll(gray, k, sigma), gaussian_marginal_nll(gray, k_hat_pad, sigma)
        gain = nll_start - nll_free
        if nll_free > nll_start - cfg.likelihood_margin:
            k = k_hat_pad  # the free-form steps lowered the marginal likelihood (joint MAP's bias): undo them
    free_form = k is not k_hat_pad
    return KernelRefinement(_recentre(k, target), kept and not free_form, searched.factor, searched.across, angle,
                            searched.disputed, unsmeared, despeckled, free_form, gain, sigma, noise_free, moved)


def _refine_free_form(y: torch.Tensor, k_init: torch.Tensor, k_anchor: torch.Tensor, sigma: float,
                      cfg: KernelRefinementConfig) -> torch.Tensor:
    """Step 3 on one pyramid level: alternate TV x-steps and Adam k-steps on the softmax logits (Cho & Lee 2009,
    Eq. 8: gradient-domain data term), k tied to ``k_anchor``; returns k re-centred on the anchor's centroid."""
    theta = torch.log(k_init + 1e-3 * k_init.max()).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=cfg.lr_kernel)
    anchor_norm = float((k_anchor**2).sum())
    n_support = theta.numel()
    gy = _gradients(y)
    k_cur = k_init
    for _ in range(cfg.outer_iterations):
        x = tv_deconvolution(y, BlurOperator(k_cur, tuple(y.shape[-2:])), cfg.x_step, sigma)
        gx = _gradients(x)
        for _ in range(cfg.k_iterations):
            opt.zero_grad(set_to_none=True)
            k_var = torch.softmax(theta.flatten(), 0).view_as(theta)
            data = sum(((valid_convolution(a, k_var) - b) ** 2).mean() for a, b in zip(gx, gy)) / (2 * sigma**2)
            loss = (data + cfg.anchor * ((k_var - k_anchor) ** 2).sum() / anchor_norm
                    + cfg.sparsity * torch.sqrt(k_var + 1e-8).sum() / math.sqrt(n_support))
            loss.backward()
            opt.step()
        with torch.no_grad():
            k_cur = torch.softmax(theta.flatten(), 0).view_as(theta)
    return _recentre(k_cur.detach(), kernel_centroid(k_anchor))


def kernel_is_trusted(y: torch.Tensor, kernel: torch.Tensor, kept: bool = True,
                      config: KernelRefinementConfig | None = None, sigma: float | None = None) -> bool:
    """Whether y gives no sign that ``kernel`` is wrong — ``prior="auto"`` then takes the learned prior.

    Two tests, both on y alone: :func:`refine_kernel` kept k̂ (``kept``: no rescaling, rotation or free-form
    kernel was more likely, and the length search's likelihood and GCV did not disagree over k̂ — a dispute is
    a sign that k̂ is wrong one way or another), and the full-band marginal likelihood prefers the kernel to its
    sharpened kernel^p (p = ``trust_power``) by ``trust_margin`` nats/px — a smeared kernel loses to its
    sharpening, which the refinement's other tests don't see. A long kept kernel
    (:func:`~restore.semiblind.kernels.rms_radius` ≥ ``trust_radius``) is trusted without the sharpness check:
    few frequencies pass it, so the check has no power there, while a 1–1.5 px smear is a small error for it.
    Hand-written model selection, set on BSD400 dev crops (``docs/methods/semiblind.md``).
    """
    if not kept:
        return False
    cfg = config or KernelRefinementConfig()
    if rms_radius(kernel.detach().cpu().numpy()) >= cfg.trust_radius:
        return True
    y = y.float().mean(1, keepdim=True)
    sigma = max(sigma if sigma is not None else estimate_noise_sigma(y), cfg.sigma_floor)
    kernel = kernel.to(y.device, torch.float32)
    return (gaussian_marginal_nll(y, _sharpened(kernel, cfg.trust_power), sigma)
            - gaussian_marginal_nll(y, _sharpened(kernel, 1.0), sigma)) > cfg.trust_margin
