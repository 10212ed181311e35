"""Non-blind baselines given the same (possibly inaccurate) kernel: Wiener and Richardson–Lucy.

- Wiener deconvolution (Wiener 1949; Tikhonov-regularised form X = K̄Y / (|K|² + λ)), in the
  Fourier domain on an edge-tapered, padded image (MATLAB ``edgetaper`` idea) so the circular FFT
  does not ring at the frame border.
- Richardson–Lucy (Richardson 1972, Lucy 1974) on the 'valid' model of
  :class:`~restore.semiblind.operators.BlurOperator`: x ← x · Aᵀ(y / Ax) / Aᵀ1 — no circular
  boundary assumption.

Both take (B, C, H, W) tensors in [0, 1] and a (kh, kw) kernel and return (B, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restore.semiblind.operators import BlurOperator

__all__ = ["wiener_deconvolution", "richardson_lucy", "edge_taper", "centred_otf"]


def centred_otf(kernel: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """rfft2 of ``kernel`` (kh, kw) zero-padded to ``hw`` with its centre at the origin: a circular convolution
    by it keeps the image in place."""
    kh, kw = kernel.shape
    kpad = torch.zeros(hw, dtype=kernel.dtype, device=kernel.device)
    kpad[:kh, :kw] = kernel
    return torch.fft.rfft2(torch.roll(kpad, (-(kh // 2), -(kw // 2)), dims=(0, 1)))


def _ramp(n_inner: int, pad: int, device, dtype) -> torch.Tensor:
    """1 over the inner ``n_inner`` samples, raised-cosine down to 0 across each ``pad`` margin."""
    t = torch.arange(1, pad + 1, device=device, dtype=dtype) / (pad + 1)
    up = 0.5 - 0.5 * torch.cos(torch.pi * t)
    return torch.cat([up, torch.ones(n_inner, device=device, dtype=dtype), up.flip(0)])


def edge_taper(y: torch.Tensor, kernel: torch.Tensor, pad: int | None = None) -> tuple[torch.Tensor, int]:
    """Reflect-pad by ``pad`` (default: kernel size) and blend the margin into its circular blur.

    The result is smooth across the periodic border, so FFT deconvolution does not ring there.

    Returns:
        (tapered (B, C, H+2p, W+2p), p)
    """
    kh, kw = kernel.shape
    p = pad if pad is not None else max(kh, kw)
    mode = "reflect" if p < min(y.shape[-2:]) else "replicate"
    yp = F.pad(y, (p, p, p, p), mode=mode)
    h, w = yp.shape[-2:]
    blurred = torch.fft.irfft2(torch.fft.rfft2(yp) * centred_otf(kernel.to(y), (h, w)), s=(h, w))
    alpha = _ramp(y.shape[-2], p, y.device, y.dtype)[:, None] * _ramp(y.shape[-1], p, y.device, y.dtype)[None, :]
    return alpha * yp + (1 - alpha) * blurred, p


def wiener_deconvolution(y: torch.Tensor, kernel: torch.Tensor, reg: float = 1e-2) -> torch.Tensor:
    """Regularised Wiener filter X = K̄·Y / (|K|² + reg), edge-tapered; (B, C, H, W) → (B, C, H, W).

    Args:
        y: blurry image (B, C, H, W).
        kernel: (kh, kw) kernel, convolution convention, sum 1.
        reg: noise-to-signal regularisation weight (larger = smoother); ~1e-2 suits σ≈1–3/255.
    """
    kernel = kernel.to(y)
    yt, p = edge_taper(y, kernel)
    h, w = yt.shape[-2:]
    otf = centred_otf(kernel, (h, w))
    x = torch.fft.irfft2(torch.fft.rfft2(yt) * otf.conj() / (otf.abs() ** 2 + reg), s=(h, w))
    return x[..., p : p + y.shape[-2], p : p + y.shape[-1]].clamp(0, 1)


def richardson_lucy(y: torch.Tensor, kernel: torch.Tensor, iterations: int = 30, eps: float = 1e-6) -> torch.Tensor:
    """Richardson–Lucy on the 'valid' model; (B, C, H, W) → (B, C, H, W) (the observed frame).

    Args:
        iterations: RL iterations (RL amplifies noise as it runs: 20–50 suit mild noise).
    """
    op = BlurOperator(kernel.to(y), tuple(y.shape[-2:]))
    yc = y.clamp_min(eps)
    x = op.pad_image(yc)
    norm = op.adjoint(torch.ones_like(y)).clamp_min(eps)
    for _ in range(iterations):
        x = x * op.adjoint(yc / op(x).clamp_min(eps)) / norm
    return op.crop_latent(x).clamp(0, 1)
