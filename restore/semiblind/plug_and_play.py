"""Non-blind x-step with a known (refined) kernel: half-quadratic splitting with a TV or a learned prior.

- :func:`pnp_deconvolution`: plug-and-play HQS of DPIR (Zhang et al., "Plug-and-Play Image Restoration
  with Deep Denoiser Prior", TPAMI 2021, Eq. 6–7 and Sec. 4.1): alternate
  x ← argmin ‖valid(k⊗x) − y‖² + α_i‖x − z‖² and z ← D_σi(x), with α_i = λσ_n²/σ_i² and σ_i
  log-spaced from 49/255 down to the noise level σ_n. D is a blind denoiser (the model zoo's
  ``denoise_gray`` / ``denoise_color``, :func:`load_denoiser`). DPIR tells its denoiser σ_i by a
  noise-level map; ours are blind, so σ_i is imposed by adding N(0, σ_i²) noise to the denoiser's input
  (seeded; averaged over ``draws``), as the stochastic denoising regulariser of Renaud et al., "Plug-and-Play
  Image Restoration with Stochastic deNOising REgularization", ICML 2024, denoises x + σ·ξ, ξ ~ N(0, I):
  without it a blind denoiser takes the x-step's ringing for signal. Departure from DPIR: λ = 0.35 with
  16 iterations and 4 draws (DPIR: λ = 0.23, 8 iterations), set on BSD400 dev crops
  (``docs/methods/semiblind.md``).
- :func:`tv_deconvolution`: the same splitting for isotropic TV (v = ∇x; x-step with α‖∇x − v‖²;
  v ← soft-threshold), Wang et al., "A new alternating minimization algorithm for total variation image
  reconstruction", SIAM J. Imaging Sci. 2008 (FTVd, Eq. 2.3–2.5).

Unlike DPIR's FFT x-step (circular boundaries), the x-step here is the 'valid' model on the
extended (H+kh−1)×(W+kw−1) domain (:class:`~restore.semiblind.operators.BlurOperator`), solved by
conjugate gradients (hand-written, a dozen lines: torch has no CG for operators), so there is
no boundary ringing and no edge-taper. Both return x on that extended domain
(``op.crop_latent(x)``: the observed frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from restore.semiblind.operators import BlurOperator

__all__ = ["tv_deconvolution", "pnp_deconvolution", "TVConfig", "PnPConfig", "conjugate_gradient",
           "estimate_noise_sigma", "load_denoiser", "denoiser_channels", "DENOISERS"]

# the model zoo's blind denoisers (restore/weights, AWGN σ ∈ [0, 50]) by image channels
DENOISERS = {1: "denoise_gray", 3: "denoise_color"}


def estimate_noise_sigma(y: torch.Tensor) -> float:
    """AWGN σ from the finest diagonal Haar band: median(|HH|)/0.6745 (Donoho & Johnstone 1994).

    Hand-written (a few lines; no torch wavelet library is a dependency). y (1, C, H, W) in [0, 1].
    """
    return float(finest_diagonal_band(y).abs().median()) / 0.6745


def finest_diagonal_band(y: torch.Tensor) -> torch.Tensor:
    """The finest diagonal (HH) band of y's orthonormal Haar transform, (…, H//2, W//2): white noise of σ stays
    σ there, while a smooth image leaves little."""
    h, w = (y.shape[-2] // 2) * 2, (y.shape[-1] // 2) * 2
    v = y[..., :h, :w]
    return (v[..., 0::2, 0::2] - v[..., 0::2, 1::2] - v[..., 1::2, 0::2] + v[..., 1::2, 1::2]) / 2


def conjugate_gradient(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor,
                       iterations: int = 20, tol: float = 1e-6) -> torch.Tensor:
    """Solve apply(x) = b for a symmetric positive-definite linear ``apply`` (tensors of any shape)."""
    x = x0.clone()
    r = b - apply(x)
    p = r.clone()
    rs = (r * r).sum()
    b_norm = float(b.norm()) or 1.0
    for _ in range(iterations):
        ap = apply(p)
        alpha = rs / (p * ap).sum().clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r * r).sum()
        if math.sqrt(float(rs_new)) < tol * b_norm:
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


@lru_cache(maxsize=4)
def _cached_denoiser(spec: str) -> nn.Module:
    from restore.checkpoint import load_model

    return load_model(spec).eval()


def load_denoiser(channels: int, path: str | Path | None = None) -> tuple[nn.Module, int]:
    """The model zoo's blind denoiser for ``channels`` (1: ``denoise_gray``, 3: ``denoise_color``), or the
    network at ``path`` (any ``restore`` export or checkpoint, loaded under the same trust rules).

    Returns:
        (network in eval mode, its input channels). A gray network restores RGB channel by channel.

    Raises:
        ValueError: ``channels`` is not 1 or 3.
        FileNotFoundError: no file at ``path``, naming it.
    """
    if path is None:
        if channels not in DENOISERS:
            raise ValueError(f"no shipped denoiser for {channels}-channel images (1 or 3); pass path=")
        spec = DENOISERS[channels]
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f"denoiser weights not found: {path}")
        spec = str(path)
    net = _cached_denoiser(spec)
    return net, denoiser_channels(net)


def denoiser_channels(net: nn.Module, default: int = 1) -> int:
    """Input channels of a denoiser: its stored config's (a ``restore`` network), else ``in_channels``, else
    ``default``."""
    if hasattr(net, "net_config"):
        return int(net.net_config.get("in_channels", 1))
    return int(getattr(net, "in_channels", default))


def _denoise(net: nn.Module, net_channels: int, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    with torch.no_grad():
        if net_channels == c:
            return net(x)
        if net_channels == 1:
            return net(x.reshape(b * c, 1, h, w)).reshape(b, c, h, w)
    raise ValueError(f"a {net_channels}-channel denoiser cannot restore a {c}-channel image")


def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences, zero at the far border (Neumann): two (B, C, H, W) tensors."""
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    gy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return gx, gy


def _grad_adjoint(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_grad` (minus the divergence)."""
    out = torch.zeros_like(gx)
    out[..., :, 1:] += gx[..., :, :-1]
    out[..., :, :-1] -= gx[..., :, :-1]
    out[..., 1:, :] += gy[..., :-1, :]
    out[..., :-1, :] -= gy[..., :-1, :]
    return out


@dataclass(frozen=True)
class TVConfig:
    """Settings of :func:`tv_deconvolution`."""

    iterations: int = 16  # HQS iterations (β continuation over 4 decades)
    # λ = tv_weight·σ_n in ½‖valid(k⊗x) − y‖² + λ‖∇x‖₁ (larger = smoother); best with the exact kernel on BSD400
    # dev crops
    tv_weight: float = 0.15
    cg_iterations: int = 15  # conjugate-gradient iterations per x-step


@dataclass(frozen=True)
class PnPConfig:
    """Settings of :func:`pnp_deconvolution` (λ, iterations and draws set on BSD400 dev crops)."""

    iterations: int = 16  # HQS iterations (DPIR: 8)
    lam: float = 0.35  # DPIR's λ (DPIR: 0.23)
    cg_iterations: int = 15  # conjugate-gradient iterations per x-step
    inject_noise: bool = True  # drive the blind denoiser at σ_i by adding N(0, σ_i²) to its input (SNORE)
    draws: int = 4  # noise draws averaged per denoiser step (a Monte-Carlo estimate of SNORE's expectation)
    sigma_end: float | None = None  # last σ_i of the schedule (default: σ_n); a larger one keeps the prior strong


def _noise_level(y: torch.Tensor, sigma: float | None) -> float:
    return max(sigma if sigma is not None else estimate_noise_sigma(y), 0.5 / 255)


def tv_deconvolution(y: torch.Tensor, op: BlurOperator, config: TVConfig = TVConfig(),
                     sigma: float | None = None) -> torch.Tensor:
    """Isotropic-TV deconvolution by half-quadratic splitting (FTVd, Wang et al. 2008, Eq. 2.3–2.5).

    Args:
        y: blurry image (1, C, H, W) in [0, 1].
        op: the blur operator of the kernel on y's frame (``BlurOperator(kernel, (H, W))``).
        config: :class:`TVConfig`.
        sigma: noise level of y (default: :func:`estimate_noise_sigma`); λ = ``tv_weight``·σ.

    Returns:
        x on the extended domain (1, C, H+kh−1, W+kw−1), in [0, 1].
    """
    y = y.float()
    sigma_n = _noise_level(y, sigma)
    aty = op.adjoint(y)
    x = op.pad_image(y)
    lam_tv = config.tv_weight * sigma_n
    for beta in np.geomspace(1e-2, 1e2, config.iterations) * lam_tv:
        gx, gy = _grad(x)
        mag = torch.sqrt(gx**2 + gy**2).clamp_min(1e-12)
        shrink = (mag - lam_tv / beta).clamp_min(0) / mag
        vx, vy = gx * shrink, gy * shrink
        b = aty + beta * _grad_adjoint(vx, vy)
        x = conjugate_gradient(lambda v: op.adjoint(op(v)) + beta * _grad_adjoint(*_grad(v)), b, x,
                               config.cg_iterations)
    return x.clamp(0, 1)


def pnp_deconvolution(y: torch.Tensor, op: BlurOperator, denoiser: nn.Module, config: PnPConfig = PnPConfig(),
                      sigma: float | None = None, seed: int = 0) -> torch.Tensor:
    """Plug-and-play HQS with a blind denoiser (DPIR, Zhang et al. 2021, Eq. 6–7), driven by injected noise.

    Args:
        y: blurry image (1, C, H, W) in [0, 1].
        op: the blur operator of the kernel on y's frame (``BlurOperator(kernel, (H, W))``).
        denoiser: a blind denoiser (:func:`load_denoiser`) with C input channels or 1 (then per channel).
        config: :class:`PnPConfig`.
        sigma: noise level of y (default: :func:`estimate_noise_sigma`).
        seed: seeds the injected noise (the result is deterministic for a given seed).

    Returns:
        x on the extended domain (1, C, H+kh−1, W+kw−1), in [0, 1].
    """
    y = y.float()
    sigma_n = _noise_level(y, sigma)
    aty = op.adjoint(y)
    x = op.pad_image(y)
    net, net_c = denoiser.to(y.device), denoiser_channels(denoiser, y.shape[1])
    generator = torch.Generator(device=y.device).manual_seed(seed)
    s_end = max(sigma_n, config.sigma_end or 0.0)
    z = x
    for s in np.geomspace(max(49 / 255, s_end), s_end, config.iterations):
        alpha = config.lam * sigma_n**2 / float(s) ** 2
        x = conjugate_gradient(lambda v: op.adjoint(op(v)) + alpha * v, aty + alpha * z, x, config.cg_iterations)
        if config.inject_noise:
            z = sum(_denoise(net, net_c, x + float(s) * torch.randn(x.shape, generator=generator, device=x.device,
                                                                   dtype=x.dtype))
                    for _ in range(config.draws)) / config.draws
        else:
            z = _denoise(net, net_c, x.clamp(0, 1))
    return z.clamp(0, 1)
