"""Blur kernels for semi-blind deblurring: validation, parametric kernels and the kernel-error simulator.

The simulator reproduces the inaccurate-kernel protocols of Tang et al., CVPR 2023 (deep residual
prior, experiments section): motion length ±15 px, angle ±30°, Gaussian σ ±3, disk radius ±3, plus a random
shift and additive noise (a kernel "as a blind method would estimate it").

Loading and Gaussian kernels are :mod:`restore.data.kernels`' (``load_kernel(path)``,
``gaussian_kernel(size, σ)``, float32 tensors). For parametric kernels, perturb the parameter and
regenerate (``gaussian_kernel(size, σ + 3)``,
``disk_kernel(r + 3)``, ``line_motion_kernel(L + 15, θ + 30)``). For arbitrary (e.g. camera-shake)
kernels, :func:`perturb_kernel` *rotates* the kernel about its centroid (angle error) and *rescales*
it about its centroid by (L + Δ)/L, L = the kernel's extent along its principal axis (length
error); rescaling also widens the trajectory by the same factor, a documented approximation.
Kernels use the convolution convention (``operators.BlurOperator``). kornia supplies the line
kernels and the rotation/scaling warps; the disk and the centroid/extent are hand-written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restore.data.kernels import gaussian_kernel, load_kernel  # the one copy of these helpers

__all__ = [
    "as_kernel",
    "kernel_centroid",
    "line_motion_kernel",
    "disk_kernel",
    "kernel_length",
    "perturb_kernel",
    "rescale_kernel",
    "principal_angle",
    "rms_radius",
    "unsmear_kernel",
    "despeckle_kernel",
]


def as_kernel(kernel: Any, tol: float = 1e-2) -> torch.Tensor:
    """Any kernel (path: :func:`restore.data.kernels.load_kernel`; array; tensor) → float64 tensor (kh, kw);
    checks it is a blur kernel.

    Raises:
        ValueError: not 2-D, NaN/Inf, negative mass, or sum not within ``tol`` of 1.
    """
    if isinstance(kernel, (str, Path)):
        kernel = load_kernel(kernel)
    k = torch.as_tensor(np.asarray(kernel.detach().cpu() if torch.is_tensor(kernel) else kernel), dtype=torch.float64)
    while k.dim() > 2 and k.shape[0] == 1:
        k = k[0]
    if k.dim() != 2:
        raise ValueError(f"kernel must be 2-D (kh, kw), got shape {tuple(k.shape)}")
    if not torch.isfinite(k).all():
        raise ValueError("kernel contains NaN or Inf values")
    total = float(k.sum())
    if abs(total - 1.0) > tol:
        raise ValueError(f"kernel must sum to ~1 (got {total:.4g}); normalise it (k / k.sum())")
    if float(k.min()) < -0.05 * float(k.max()):
        raise ValueError(f"kernel has large negative values (min {float(k.min()):.3g}); a blur kernel is non-negative")
    return k


def line_motion_kernel(length: float, angle: float, size: int | None = None) -> np.ndarray:
    """Linear motion blur of ``length`` px at ``angle`` degrees (kornia.filters.get_motion_kernel2d).

    ``size`` (odd) defaults to the smallest odd size holding the line.
    """
    from kornia.filters import get_motion_kernel2d

    size = size or (2 * int(math.ceil(length / 2)) + 1)
    k = get_motion_kernel2d(int(size), float(angle), 0.0, mode="bilinear")[0].double().numpy()
    return k / k.sum()


def disk_kernel(radius: float, size: int | None = None) -> np.ndarray:
    """Out-of-focus disk of ``radius`` px, antialiased by 8× supersampling (hand-written: kornia has none)."""
    size = size or (2 * int(math.ceil(radius)) + 1)
    ss = 8
    c = (size - 1) / 2
    coords = (np.arange(size * ss) + 0.5) / ss - 0.5 - c
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    fine = (xx**2 + yy**2 <= max(radius, 0.5) ** 2).astype(np.float64)
    k = fine.reshape(size, ss, size, ss).mean(axis=(1, 3))
    return k / k.sum()


def kernel_centroid(k: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """The kernel's centre of mass (row, column) in pixels of its array, computed in float64."""
    k = np.asarray(k.detach().cpu() if isinstance(k, torch.Tensor) else k, dtype=np.float64)
    yy, xx = np.indices(k.shape)
    return float((yy * k).sum() / k.sum()), float((xx * k).sum() / k.sum())


def kernel_length(kernel: np.ndarray, threshold: float = 0.05) -> float:
    """Extent (px) of the kernel's support (> threshold·max) along its principal axis."""
    k = np.asarray(kernel, dtype=np.float64)
    ys, xs = np.nonzero(k > threshold * k.max())
    if len(ys) < 2:
        return 1.0
    pts = np.stack([ys, xs], 1).astype(np.float64)
    pts -= pts.mean(0)
    _, _, vt = np.linalg.svd(pts, full_matrices=False)
    proj = pts @ vt[0]
    return float(proj.max() - proj.min() + 1)


def _canvas(k: np.ndarray, factor: float) -> tuple[np.ndarray, tuple[float, float]]:
    """k on a zero square big enough to scale it by ``factor``, and its centroid there as (x, y)."""
    h, w = k.shape
    side = int(math.ceil(max(h, w) * max(1.0, factor) * 1.5)) | 1
    canvas = np.zeros((side, side))
    cy, cx = kernel_centroid(k)
    oy, ox = side // 2 - int(round(cy)), side // 2 - int(round(cx))
    canvas[oy : oy + h, ox : ox + w] = k
    return canvas, (ox + cx, oy + cy)


def _warp(k: np.ndarray, angle: float, factor: float, mode: str = "bilinear") -> np.ndarray:
    """Rotate by ``angle``° and scale by ``factor`` about the centroid, on a canvas big enough (``mode``: kornia's
    interpolation, "bilinear" or "bicubic")."""
    from kornia.geometry.transform import rotate, scale

    canvas, (cx, cy) = _canvas(k, factor)
    t = torch.from_numpy(canvas)[None, None]
    centre = torch.tensor([[cx, cy]], dtype=t.dtype)
    if factor != 1.0:
        t = scale(t, torch.tensor([[factor, factor]], dtype=t.dtype), center=centre, mode=mode, align_corners=True)
    if angle != 0.0:
        t = rotate(t, torch.tensor([float(angle)], dtype=t.dtype), center=centre, mode=mode, align_corners=True)
    return t[0, 0].clamp_min(0).numpy()


def rotate_kernel(kernel: Any, angle: float, mode: str = "bicubic") -> np.ndarray:
    """Rotate a kernel by ``angle``° (counter-clockwise) about its centroid; float64 odd square (≥ the input size)
    summing to 1, centred on its centroid. Bicubic by default: bilinear resampling smooths a thin path like a
    ~0.5 px smear (dev, a kernel rotated by 30° and back, hyper-Laplacian restoration: bicubic 1.0–1.7 dB above
    bilinear); :func:`perturb_kernel`'s protocol keeps bilinear."""
    k = as_kernel(kernel).double().numpy()
    size = max(k.shape) | 1
    if angle:
        k = _warp(k, angle, 1.0, mode)
        k[k < 1e-3 * k.max()] = 0  # bicubic's ripple around the path: it would only widen the support
        k = _crop_to_support(k, size)
    return k / k.sum()


def _crop_to_support(k: np.ndarray, min_size: int) -> np.ndarray:
    """Crop to an odd square around the centroid holding all mass > 1e-4·max (at least ``min_size``)."""
    ys, xs = np.nonzero(k > 1e-4 * k.max())
    cy, cx = (int(round(c)) for c in kernel_centroid(k))
    half = max(int(max(abs(ys - cy).max(), abs(xs - cx).max())), min_size // 2)
    k = np.pad(k, half)
    cy, cx = cy + half, cx + half
    return k[cy - half : cy + half + 1, cx - half : cx + half + 1]


def perturb_kernel(
    kernel: Any,
    *,
    length: float = 0.0,
    angle: float = 0.0,
    gaussian_sigma: float = 0.0,
    disk_radius: float = 0.0,
    shift: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Simulate an inaccurate kernel k̂ from a true kernel k (the paper's kernel-error protocols).

    Args:
        kernel: true kernel (kh, kw), array/tensor/path, summing to 1.
        length: change of motion length in px (rescale about the centroid by (L+length)/L).
        angle: change of motion angle in degrees (rotation about the centroid, counter-clockwise).
        gaussian_sigma: blur the kernel with a Gaussian of this σ (a smeared estimate).
        disk_radius: blur the kernel with a disk of this radius (a dilated estimate).
        shift: random sub-pixel shift of up to this many px in each direction.
        noise: additive noise on the support, as a fraction of the kernel's maximum (clipped ≥ 0).
        seed: seed of the random shift/noise.

    Returns:
        float64 array (odd square, ≥ the input size) summing to 1, centred on its centroid (as
        blind estimates are): for an off-centre true kernel this adds a shift to the error.
    """
    k = as_kernel(kernel).numpy()
    rng = np.random.default_rng(seed)
    size = max(k.shape) | 1
    if length:
        base = kernel_length(k)
        factor = max(base + length, 1.0) / base
    else:
        factor = 1.0
    if factor != 1.0 or angle:
        k = _warp(k, angle, factor)
    for extra in (gaussian_kernel(2 * int(math.ceil(3 * gaussian_sigma)) + 1, gaussian_sigma).double().numpy()
                  if gaussian_sigma > 0 else None,
                  disk_kernel(disk_radius) if disk_radius > 0 else None):
        if extra is not None:
            from scipy.signal import fftconvolve

            k = fftconvolve(np.pad(k, max(extra.shape)), extra, mode="same")
    if shift:
        dy, dx = rng.uniform(-shift, shift, size=2)
        k = _warp_shift(k, dy, dx)
    k = np.clip(k, 0, None)
    if noise:
        support = k > 0.01 * k.max()
        k = np.clip(k + noise * k.max() * rng.standard_normal(k.shape) * _dilate(support), 0, None)
    k = _crop_to_support(k, size)
    return k / k.sum()


def _coordinate_covariance(k: np.ndarray) -> np.ndarray:
    """Mass-weighted 2×2 covariance of the taps' (x, y) coordinates about the centroid."""
    yy, xx = np.indices(k.shape)
    cy, cx = kernel_centroid(k)
    dy, dx = (yy - cy).ravel(), (xx - cx).ravel()
    w = k.ravel() / k.sum()
    return np.array([[np.sum(w * dx * dx), np.sum(w * dx * dy)], [np.sum(w * dx * dy), np.sum(w * dy * dy)]])


def principal_angle(kernel: np.ndarray) -> float:
    """Angle (degrees, image x axis, counter-clockwise as :func:`perturb_kernel` rotates) of the kernel's
    principal axis: the leading eigenvector of its mass-weighted coordinate covariance."""
    vx, vy = np.linalg.eigh(_coordinate_covariance(np.asarray(kernel, dtype=np.float64)))[1][:, -1]
    return float(np.degrees(np.arctan2(-vy, vx)))  # rows grow downwards: flip y for counter-clockwise


def rms_radius(kernel: Any) -> float:
    """√(Σ k·|p − centroid|² / Σ k): the kernel's spread in px, the root of its coordinate covariance's trace
    (a straight L-px line: √((L² − 1)/12))."""
    return float(np.sqrt(np.trace(_coordinate_covariance(np.asarray(kernel, dtype=np.float64)))))


def rescale_kernel(kernel: Any, factor: float, along_axis: bool = True, across: float = 1.0,
                   mode: str = "bilinear") -> np.ndarray:
    """Stretch (factor > 1) or shorten a kernel about its centroid, along its principal axis only
    (``along_axis``: a motion path gets longer, not thicker; ``across`` scales it across the axis, e.g. < 1
    makes a smeared path thinner) or in both directions by ``factor`` (``along_axis=False``, as
    :func:`perturb_kernel`'s ``length``), resampled by ``mode`` ("bilinear" or "bicubic", kornia). Returns a
    float64 odd square summing to 1, centred on its centroid."""
    from kornia.geometry.transform import warp_affine

    k = as_kernel(kernel).double().numpy()
    if factor <= 0 or across <= 0:
        raise ValueError(f"kernel scale factors must be > 0, got {factor} along, {across} across")
    if factor != 1.0 and not along_axis:
        k = _warp(k, 0.0, factor, mode)
    elif factor != 1.0 or across != 1.0:
        canvas, centre = _canvas(k, factor)
        c = np.array(centre)
        side = canvas.shape[0]
        a = math.radians(principal_angle(k))
        u = np.array([math.cos(a), -math.sin(a)])  # the axis in (x, y) pixel coordinates
        v = np.array([-u[1], u[0]])
        m = np.eye(2) + (factor - 1.0) * np.outer(u, u) + (across - 1.0) * np.outer(v, v)  # stretch along u, across v
        affine = np.concatenate([m, (c - m @ c)[:, None]], 1)
        t = warp_affine(torch.from_numpy(canvas)[None, None], torch.from_numpy(affine)[None], (side, side),
                        mode=mode, align_corners=True)
        k = t[0, 0].clamp_min(0).numpy()  # resampling changes the mass: renormalised below
    if mode != "bilinear" and (factor != 1.0 or across != 1.0):
        k[k < 1e-3 * k.max()] = 0  # bicubic's ripple around the path, as in rotate_kernel
    k = _crop_to_support(np.clip(k, 0, None), 3)
    return k / k.sum()


def _dilate(mask: np.ndarray, r: int = 2) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=r).astype(np.float64)


def _warp_shift(k: np.ndarray, dy: float, dx: float) -> np.ndarray:
    from scipy.ndimage import shift as nd_shift

    pad = int(math.ceil(max(abs(dy), abs(dx)))) + 1
    return nd_shift(np.pad(k, pad), (dy, dx), order=1, mode="constant")


def unsmear_kernel(kernel: Any, sigma: float, iterations: int = 400) -> torch.Tensor:
    """Take a Gaussian smear of ``sigma`` px out of a kernel: the non-negative k′ of k's shape minimising
    ‖g_σ ⊛ k′ − k‖² (FISTA, Beck & Teboulle 2009, projected onto k′ ≥ 0; ``iterations`` steps from k), summing to 1.

    A smeared kernel estimate is the true kernel convolved with a Gaussian; its Fourier phase is the true one, only
    |K| is damped at high frequencies. The constraint k′ ≥ 0 keeps the inversion of that damping stable on a thin
    motion path. Hand-written: least squares with a positivity constraint on a few hundred taps, the Gaussian
    applied as two circulant matrix products (scipy's ``nnls`` would build the dense matrix; Richardson–Lucy is a
    Poisson fit whose iteration count regularises).
    Returns float32 (kh, kw).
    """
    k = as_kernel(kernel).double()
    if sigma <= 0:
        return (k / k.sum()).float()
    kh, kw = k.shape
    r = int(math.ceil(3 * sigma)) + 1  # room for the Gaussian's support: no wrap-around on the FFT grid
    hw = (kh + 2 * r, kw + 2 * r)
    target = torch.zeros(hw, dtype=torch.float64)
    target[r : r + kh, r : r + kw] = k
    # the Gaussian's transfer function g (real, ≤ 1) is separable: its filtering of the FFT grid is a circulant matrix
    # per axis, applied by two small matrix products (5–10× faster than two FFTs per step; the same operator)
    g_y, gg_y = _circulant_gaussian(hw[0], sigma)
    g_x, gg_x = _circulant_gaussian(hw[1], sigma)
    gt_target = g_y @ target @ g_x.T
    x, z, t = target, target, 1.0
    for _ in range(iterations):  # step 1: the data term's Lipschitz constant is max |g|² = 1
        x_next = (z - (gg_y @ z @ gg_x.T - gt_target)).clamp_min(0)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = x_next + (t - 1) / t_next * (x_next - x)
        x, t = x_next, t_next
    out = x[r : r + kh, r : r + kw]
    return (out / out.sum().clamp_min(1e-12)).float()


def _circulant_gaussian(n: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The circulant (n, n) matrices of a σ-px Gaussian's transfer function g on an n-point FFT grid, and of g²."""
    w = torch.fft.fftfreq(n, dtype=torch.float64)
    g = torch.exp(-2 * math.pi**2 * sigma**2 * w**2)
    index = (torch.arange(n)[:, None] - torch.arange(n)[None]) % n
    return torch.fft.ifft(g).real[index], torch.fft.ifft(g * g).real[index]


def despeckle_kernel(kernel: Any, support: float = 0.05, max_level: float = 0.2) -> tuple[torch.Tensor, float]:
    """Clear the speckle of a noisy kernel estimate; returns (kernel, level cleared as a fraction of the max, 0: none).

    The support (taps ≥ ``support``·max, Cho & Lee's 1/20, "Fast motion deblurring", SIGGRAPH Asia 2009) of a clean
    motion or Gaussian kernel is one 8-connected piece; a raw blind estimate's noise leaves isolated specks beside
    it. If there is more than one piece, every tap no larger than the largest tap outside the most massive piece
    (the speck level: taps that low cannot be told from speckle), and at most ``max_level``·max, is cleared (dev,
    k̂ smeared and with 10 % noise: +1.07 dB; clearing below max/20 only: +0.26). A one-piece kernel comes back
    unchanged. Connected pieces: scipy's ``ndimage.label``. Returns float32 (kh, kw), summing to 1.
    """
    from scipy.ndimage import label

    k = as_kernel(kernel).double().numpy()
    peak = float(k.max())
    pieces, n = label(k >= support * peak, structure=np.ones((3, 3)))
    if n <= 1:
        return torch.from_numpy(k / k.sum()).float(), 0.0
    mass = np.bincount(pieces.ravel(), weights=k.ravel())[1:]
    outside = (pieces > 0) & (pieces != 1 + int(np.argmax(mass)))
    level = min(float(k[outside].max()), max_level * peak)
    k = np.where(k > level, k, 0.0)
    return torch.from_numpy(k / k.sum()).float(), level / peak
