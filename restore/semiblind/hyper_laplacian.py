"""Non-blind deconvolution whose regularisation is set by the noise level of y: a hyper-Laplacian prior by FFT.

- :func:`hyper_laplacian_deconvolution`: Krishnan & Fergus, "Fast image deconvolution using hyper-Laplacian
  priors", NeurIPS 2009, Eq. 2–4: min_x ½‖k ⊛ x − y‖² + λ Σ_d |∂_d x|^α by half-quadratic splitting, the x-step
  in closed form in Fourier space (their Eq. 4), β from β₀ up by ×``beta_ratio`` over ``iterations``.
  Departures: the w-step is Chartrand's p-shrinkage (IEEE ICASSP 2009), w = sign(v)·max(|v| − (λ/β)^{2−α}|v|^{α−1},
  0), a closed-form approximation of the |·|^α proximal map instead of their lookup table / cubic root; and
  λ = ``weight``·(σ² + ``quantisation_share``·σ_q²)/0.01 follows the noise level σ of y (MAP with noise σ:
  λ ∝ σ²), so a noise-free input is barely regularised (issue #29: a fixed weight smooths it as if noisy). The
  extra σ_q² term (σ_q = 1/(255√12)): 8-bit rounding is bounded, not Gaussian, and wants about 3× the weight of
  Gaussian noise of its σ (dev, exact kernels: weight 0.3 best on noise-free blur, 0.1 at σ = 0.01).
- :func:`estimate_noise_level`: σ of y. Given the kernel, from the frequencies the kernel removes: where
  |K(ω)|² < 10⁻⁴ (and |ω| ≥ 0.25 cycles/px) y holds noise only, so its periodogram's median there is σ²·ln 2
  (the spectral noise estimate of blur identification, e.g. Lagendijk & Biemond, "Iterative identification and
  restoration of images", 1991, Ch. 5); texture cannot inflate it, because the blur has removed the texture at
  those frequencies (CBSD432 dev crops × camera-shake kernels, 8-bit: 0.0010–0.0012 on noise-free blur against
  0.0011 true, 0.0098–0.0105 at σ = 0.01). Without a kernel, or where too few frequencies qualify, from y's
  finest diagonal Haar band (Donoho & Johnstone 1994, as :func:`~restore.semiblind.plug_and_play.estimate_noise_sigma`)
  over its flattest blocks only — the 10th percentile of the band's RMS over 16×16 blocks, in the spirit of
  weak-texture patch selection (Liu, Tanaka & Okutomi, IEEE TIP 2013) — which still reads a textured photograph's
  detail as noise (same crops, noise-free: up to 0.0038). Both are floored at the 8-bit quantisation noise
  1/(255√12).
- :func:`wraps_around`: whether y is continuous across its periodic border (a circularly blurred image): then the
  FFT model is exact and no edge-taper is applied; otherwise y is edge-tapered first
  (:func:`~restore.semiblind.baselines.edge_taper`).

Hand-written: no installed library has an FFT hyper-Laplacian solver for torch tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from restore.semiblind.baselines import centred_otf, edge_taper
from restore.semiblind.plug_and_play import estimate_noise_sigma, finest_diagonal_band

__all__ = ["HyperLaplacianConfig", "hyper_laplacian_deconvolution", "estimate_noise_level", "periodic_component",
           "weight_sensitivity", "wraps_around", "QUANTISATION_SIGMA"]

QUANTISATION_SIGMA = 1.0 / (255 * math.sqrt(12))  # the noise an 8-bit image carries even when "noise-free"


@dataclass(frozen=True)
class HyperLaplacianConfig:
    """Settings of :func:`hyper_laplacian_deconvolution` (set on CBSD432 256² gray dev crops, exact kernels)."""

    weight: float = 0.1  # λ = weight·(σ² + quantisation_share·σ_q²)/0.01 (dev, exact kernels: 0.1–3 tried)
    quantisation_share: float = 2.0  # the 8-bit rounding's extra weight (see the module docstring)
    alpha: float = 2.0 / 3.0  # exponent of the gradient prior (Krishnan & Fergus: 2/3; 1 is TV, anisotropic)
    iterations: int = 16  # HQS iterations
    beta_ratio: float = 1e4  # β runs from λ to λ·beta_ratio (geometric)
    boundary: str = "auto"  # "auto" (:func:`wraps_around`), "periodic" or "taper"
    # prior="auto" on a periodic y: distrusted_weight where the solution moves by more than max_sensitivity of its
    # change to y when λ triples (:func:`weight_sensitivity`: the kernel does not explain y). Dev (4 CBSD432 crops ×
    # 4 camera-shake kernels, refined kernels, noise-free, 112 perturbed runs): mean gap to the exact-kernel Wiener
    # −4.41 dB at weight 0.1 always, −4.00 at 0.3 always, −4.01 with this rule, which kept all 16 exact runs at 0.1
    # (+1.40 mean, against −0.59 at 0.3); the thresholds 0.35–0.45 and a distrusted weight of 1 did worse
    max_sensitivity: float = 0.3
    distrusted_weight: float = 0.3
    # ... on a (nearly) noise-free y only, σ ≤ this: noise makes any solution follow λ (dev, σ = 0.01, exact kernels:
    # 0.29–0.54, where weight 0.1 was still 1.0 dB better than 0.3), and it hides a kernel error anyway
    sensitivity_max_noise: float = 2 * QUANTISATION_SIGMA
    # distrusted_weight too where the refinement cleared specks from k̂ (a raw blind estimate: its path is as noisy
    # as the specks beside it were, which no clearing removes) and y is noise-free, σ ≤ speckled_max_noise (the
    # refinement's noise-free test). The sensitivity test misses it: such a kernel's misfit raises σ̂ (dev 1.3–3.4 σ_q)
    # and λ with it. Dev (8 CBSD432 crops × 6 camera-shake kernels, blind-style k̂, refined): noise-free, 0.3 beat 0.1
    # in 48 of 48 runs, mean gap −6.67 → −6.19 dB; at σ = 0.01 it lost in 46 of 48, hence noise-free only
    distrust_speckled: bool = True
    speckled_max_noise: float = 4 * QUANTISATION_SIGMA

    def __post_init__(self):
        if self.boundary not in ("auto", "periodic", "taper"):
            raise ValueError(f"boundary must be 'auto', 'periodic' or 'taper', got {self.boundary!r}")

    def is_periodic(self, y: torch.Tensor, wraps: bool | None = None) -> bool:
        """Whether the deconvolution treats y as periodic (no edge taper): ``"auto"`` follows :func:`wraps_around`
        of y, or ``wraps`` where the caller has already tested it."""
        if self.boundary != "auto":
            return self.boundary == "periodic"
        return wraps_around(y) if wraps is None else wraps


def estimate_noise_level(y: torch.Tensor, kernel: torch.Tensor | None = None, block: int = 16, quantile: float = 0.1,
                         floor: float = QUANTISATION_SIGMA, stopband: float = 1e-4, min_frequency: float = 0.25,
                         min_count: int = 64) -> float:
    """AWGN σ of y (…, H, W) in [0, 1], at least ``floor``.

    With ``kernel`` (kh, kw): √(median |Y(ω)|²/N / ln 2) over the frequencies where |K(ω)|² < ``stopband`` and
    |ω| ≥ ``min_frequency`` cycles/px (y made periodic first, :func:`periodic_component`, unless it wraps around),
    if at least ``min_count`` qualify. Otherwise, or without a kernel: the ``quantile`` of the finest diagonal
    Haar band's RMS over ``block``×``block`` blocks (the flattest ones: texture inflates the rest).
    """
    gray = y.float().reshape(-1, *y.shape[-2:]).mean(0)
    if kernel is not None:
        g = gray.double()
        g = g if wraps_around(g) else periodic_component(g)
        hw = tuple(g.shape)
        k_power = centred_otf(kernel.detach().to(g.device, torch.float64), hw).abs() ** 2
        power = torch.fft.rfft2(g - g.mean()).abs() ** 2 / (hw[0] * hw[1])
        wy = torch.fft.fftfreq(hw[0], dtype=torch.float64, device=g.device)[:, None]
        wx = torch.fft.rfftfreq(hw[1], dtype=torch.float64, device=g.device)[None]
        stop = (k_power < stopband) & (wy**2 + wx**2 >= min_frequency**2)
        if int(stop.sum()) >= min_count:
            return max(math.sqrt(float(power[stop].median()) / math.log(2)), floor)
    hh = finest_diagonal_band(gray)
    bh, bw = hh.shape[0] // block, hh.shape[1] // block
    if bh * bw < 4:  # too small for blocks: the band's median (Donoho & Johnstone)
        return max(estimate_noise_sigma(gray), floor)
    blocks = hh[: bh * block, : bw * block].reshape(bh, block, bw, block).permute(0, 2, 1, 3).reshape(bh * bw, -1)
    return max(float(torch.quantile(blocks.pow(2).mean(1).sqrt(), quantile)), floor)


def periodic_component(y: torch.Tensor) -> torch.Tensor:
    """Moisan's periodic component of y (…, H, W) ("Periodic plus smooth image decomposition", JMIV 2011): y minus
    the smooth image whose Laplacian is y's jumps across its periodic border, so that the FFT sees no border
    cross. Hand-written: a few FFT lines no installed library offers."""
    h, w = y.shape[-2:]
    v = torch.zeros_like(y)
    v[..., 0, :] += y[..., -1, :] - y[..., 0, :]
    v[..., -1, :] += y[..., 0, :] - y[..., -1, :]
    v[..., :, 0] += y[..., :, -1] - y[..., :, 0]
    v[..., :, -1] += y[..., :, 0] - y[..., :, -1]
    cy = torch.cos(2 * math.pi * torch.arange(h, dtype=y.dtype, device=y.device) / h)[:, None]
    cx = torch.cos(2 * math.pi * torch.arange(w, dtype=y.dtype, device=y.device) / w)[None]
    denom = 2 * cy + 2 * cx - 4
    denom[0, 0] = 1.0
    smooth_f = torch.fft.fft2(v) / denom
    smooth_f[..., 0, 0] = 0
    return y - torch.fft.ifft2(smooth_f).real


def wraps_around(y: torch.Tensor, ratio: float = 4.0) -> bool:
    """True if y continues smoothly across its periodic border (a circularly blurred image, for which the FFT
    model is exact): on both axes, the mean |second difference| across the border is at most ``ratio`` × the
    interior's. Dev (camera / CBSD432 crops 256², kernels12, lines at 30°): 0.9–2.7 circularly blurred (σ 0 or
    0.01), 18–101 'valid'-blurred; a kernel with no extent across an axis leaves that border's jump (6–33 for a
    0° line: then y counts as not wrapping)."""
    gray = y.float().reshape(-1, *y.shape[-2:]).mean(0)
    for a in (gray, gray.T):
        inner = (a[2:] - 2 * a[1:-1] + a[:-2]).abs().mean().clamp_min(1e-6)
        border = 0.5 * ((a[0] - 2 * a[-1] + a[-2]).abs().mean() + (a[1] - 2 * a[0] + a[-1]).abs().mean())
        if border > ratio * inner:
            return False
    return True


def _forward_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.roll(x, -1, -1) - x, torch.roll(x, -1, -2) - x


def _shrink(v: torch.Tensor, threshold: float, alpha: float) -> torch.Tensor:
    """Chartrand's p-shrinkage (α = 1: soft threshold)."""
    a = v.abs().clamp_min(1e-12)
    return torch.sign(v) * (a - threshold ** (2 - alpha) * a ** (alpha - 1)).clamp_min(0)


def hyper_laplacian_deconvolution(y: torch.Tensor, kernel: torch.Tensor,
                                  config: HyperLaplacianConfig = HyperLaplacianConfig(),
                                  sigma: float | None = None, clamp: bool = True) -> torch.Tensor:
    """Deconvolve y (B, C, H, W) in [0, 1] by ``kernel`` (kh, kw) under a hyper-Laplacian gradient prior whose
    weight follows the noise level ``sigma`` (default: :func:`estimate_noise_level` given the kernel); returns
    (B, C, H, W), aligned with y (the kernel's centre is the origin), clipped to [0, 1] unless not ``clamp``."""
    y = y.float()
    kernel = kernel.to(y)
    sigma = estimate_noise_level(y, kernel) if sigma is None else sigma
    yt, p = (y, 0) if config.is_periodic(y) else edge_taper(y, kernel)
    hw = tuple(yt.shape[-2:])
    k_f = centred_otf(kernel, hw)
    dx = torch.zeros(hw, dtype=y.dtype, device=y.device)
    dy = torch.zeros(hw, dtype=y.dtype, device=y.device)
    dx[0, 0], dx[0, -1], dy[0, 0], dy[-1, 0] = -1, 1, -1, 1  # (d ⊛ x)[n] = x[n+1] − x[n], as _forward_differences
    dx_f, dy_f = torch.fft.rfft2(dx), torch.fft.rfft2(dy)
    kty = k_f.conj() * torch.fft.rfft2(yt)
    k2, d2 = k_f.abs() ** 2, dx_f.abs() ** 2 + dy_f.abs() ** 2
    lam = config.weight * (sigma**2 + config.quantisation_share * QUANTISATION_SIGMA**2) / 0.01
    x = yt
    for beta in np.geomspace(1.0, config.beta_ratio, config.iterations) * lam:
        gx, gy = _forward_differences(x)
        wx, wy = _shrink(gx, lam / beta, config.alpha), _shrink(gy, lam / beta, config.alpha)
        num = kty + beta * (dx_f.conj() * torch.fft.rfft2(wx) + dy_f.conj() * torch.fft.rfft2(wy))
        x = torch.fft.irfft2(num / (k2 + beta * d2 + 1e-12), s=hw)
    x = x[..., p : p + y.shape[-2], p : p + y.shape[-1]]
    return x.clamp(0, 1) if clamp else x


def weight_sensitivity(y: torch.Tensor, kernel: torch.Tensor,
                       config: HyperLaplacianConfig = HyperLaplacianConfig(), sigma: float | None = None) -> float:
    """How far the solution moves when λ triples, relative to the deconvolution's own change to y:
    ‖x_λ − x_3λ‖ / ‖x_3λ − y‖ (unclipped solutions).

    A kernel that explains y leaves a well-posed problem whose solution barely depends on a small λ; a wrong one
    leaves errors that 1/|K| amplifies wherever λ lets it, so the solution follows λ (the stability idea behind
    the L-curve, Hansen 1992, used here as a kernel test from y alone). Dev (4 CBSD432 256² gray crops × 4
    camera-shake kernels, noise-free 8-bit circular blur, weight 0.1, after the refinement): exact kernels
    0.09–0.27; smeared by 0.7 px (kept) 0.24–0.43, 15 % too long 0.15–0.40, blind-style estimates 0.11–0.50 — the
    separation depends on the image. Hand-written.
    """
    sigma = estimate_noise_level(y, kernel) if sigma is None else sigma
    x1 = hyper_laplacian_deconvolution(y, kernel, config, sigma, clamp=False)
    x3 = hyper_laplacian_deconvolution(y, kernel, replace(config, weight=3 * config.weight), sigma, clamp=False)
    return float((x1 - x3).norm() / (x3 - y.float()).norm().clamp_min(1e-12))
